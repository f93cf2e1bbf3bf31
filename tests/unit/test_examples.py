"""The workflow examples in conf/examples parse and name entry points that exist."""

from __future__ import annotations

import ast
import json
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from jobs.engine import delta_coordinates
from jobs.spec import pql
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


def test_airflow_dag_parses_and_submits_the_entry_point_with_the_jars():
    tree = ast.parse((EXAMPLES / "airflow_export_dag.py").read_text())
    call = next(n for n in ast.walk(tree)
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "SparkSubmitOperator")
    keywords = {k.arg: k.value for k in call.keywords}
    assert ast.unparse(keywords["application"]).endswith("/jobs/submit.py'")
    assert (ROOT / "jobs" / "submit.py").exists()
    application_args = keywords["application_args"]
    assert isinstance(application_args, ast.List)
    args = [ast.literal_eval(e) if isinstance(e, ast.Constant) else "export.toml" for e in application_args.elts]
    _submit_arguments(args)
    jars = ast.unparse(keywords["jars"])
    for coordinate in delta_coordinates():
        _, artifact, version = coordinate.split(":")
        assert f"{artifact}-{version}.jar" in jars


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
