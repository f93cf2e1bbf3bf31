"""The workflow examples in conf/examples parse and name entry points that exist."""

from __future__ import annotations

import ast
import json
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from jobs.spec import ENVIRONMENT_OVERRIDES, pql
from jobs.spec.jobs import parse_definition
from jobs.spec.segments import SegmentRequest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "conf" / "examples"


def _submit_arguments(args: list[str]) -> None:
    """The arguments must be accepted by jobs/submit.py's parser."""
    from jobs.shells import submit

    assert args[:1] == ["--conf"] and (ROOT / "conf" / Path(args[1]).name).exists()
    parser_args = ["--conf", "x.toml", *args[2:]]
    namespace = submit.parse_args(parser_args)
    assert namespace.command == "run-pending" or namespace.job_id is not None


def test_airflow_dag_runs_scripts_submit_with_arguments_the_entry_point_takes():
    tree = ast.parse((EXAMPLES / "airflow_export_dag.py").read_text())
    call = next(n for n in ast.walk(tree)
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "BashOperator")
    command = ast.unparse({k.arg: k.value for k in call.keywords}["bash_command"])
    words = command.strip("f'").split()
    assert words[0] == "{HOME}/scripts/submit" and (ROOT / "scripts" / "submit").exists()
    _submit_arguments([w.replace("{HOME}/", "") for w in words[words.index("--") + 1:]])
    assert ".jar" not in command and ".zip" not in command  # scripts/submit finds and builds them


def _cli_accepts(argv: list[str]) -> None:
    from jobs.shells.cli import _parser

    _parser().parse_args(argv)


def test_the_dockerfile_copies_what_exists_and_runs_commands_the_cli_takes():
    lines = (EXAMPLES / "Dockerfile").read_text().splitlines()
    for line in (x for x in lines if x.startswith("COPY ")):
        assert all((ROOT / source).exists() for source in line.split()[1:-1]), line
    run = " ".join(x for x in lines if "setup-jars" in x)
    assert "export-jobs setup-jars --dir" in run and "-c scripts/constraints.txt '.[spark]'" in "\n".join(lines)
    [cmd] = [json.loads(x.removeprefix("CMD ")) for x in lines if x.startswith("CMD ")]
    _cli_accepts(cmd)
    assert 'EXPORT_JOBS_DELTA_JARS=provided' in "\n".join(lines)


def test_the_compose_file_builds_the_dockerfile_and_serves_a_mounted_config():
    compose = yaml.safe_load((EXAMPLES / "compose.yaml").read_text())["services"]["export-jobs"]
    assert (EXAMPLES / compose["build"]["context"] / compose["build"]["dockerfile"]).resolve() == (
        EXAMPLES / "Dockerfile").resolve()
    _cli_accepts(compose["command"])
    assert "/etc/export-jobs/export.toml" in " ".join(compose["volumes"])
    assert set(compose["environment"]) <= set(ENVIRONMENT_OVERRIDES)


def test_databricks_job_runs_the_submit_entry_point():
    job = json.loads((EXAMPLES / "databricks_job.json").read_text())
    task = job["tasks"][0]["spark_python_task"]
    assert task["python_file"].endswith("/jobs/submit.py")
    _submit_arguments(["--conf", Path(task["parameters"][1]).name, *task["parameters"][2:]])
    pinned = dict(lib["pypi"]["package"].split("==") for lib in job["tasks"][0]["libraries"])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dependencies = [Requirement(d) for d in project["dependencies"]]
    # The runtime brings pyspark and delta-spark (an extra); FastAPI and uvicorn load only for `serve`.
    assert set(pinned) == {d.name for d in dependencies if d.name not in ("fastapi", "uvicorn")}
    tested = dict(line.split("==") for line in (ROOT / "scripts" / "constraints.txt").read_text().splitlines()
                  if line and not line.startswith("#"))
    assert pinned == {name: tested[name] for name in pinned}  # the versions CI tests


def test_example_job_definition_is_valid():
    parse_definition((EXAMPLES / "job.json").read_text())


def test_example_segment_and_evaluating_job_are_valid():
    segment = SegmentRequest.parse((EXAMPLES / "segment.json").read_text())
    pql.parse(segment.expression.value)
    job = parse_definition((EXAMPLES / "evaluating-job.json").read_text())
    assert job.evaluation_info.segmentation and job.filter.segments is not None
    assert job.filter.segments[0].segment_id == "SEGMENT_ID"


def test_the_examples_readme_lists_every_example():
    listed = (EXAMPLES / "README.md").read_text()
    files = sorted(p.name for p in EXAMPLES.iterdir() if p.name != "README.md")
    assert [f for f in files if f"`{f}`" not in listed] == []
