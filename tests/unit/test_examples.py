"""The workflow examples in conf/examples parse and name entry points that exist."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import subprocess
import sys
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


def test_the_spark_application_runs_the_submit_entry_point_from_the_image():
    app = yaml.safe_load((EXAMPLES / "spark-application.yaml").read_text())
    spec = app["spec"]
    assert (app["apiVersion"], app["kind"]) == ("sparkoperator.k8s.io/v1beta2", "SparkApplication")
    dockerfile = (EXAMPLES / "Dockerfile").read_text()
    # The main file is the one the Dockerfile copies into its working directory; the image is its tag.
    assert spec["mainApplicationFile"] == "local:///opt/export-jobs/jobs/submit.py"
    assert "WORKDIR /opt/export-jobs" in dockerfile and "COPY jobs jobs" in dockerfile
    assert f"-t {spec['image']} ." in dockerfile
    _submit_arguments(["--conf", Path(spec["arguments"][1]).name, *spec["arguments"][2:]])
    assert spec["sparkVersion"] == importlib.metadata.version("pyspark")
    assert {e["name"] for e in spec["driver"]["env"]} <= set(ENVIRONMENT_OVERRIDES)
    assert "/etc/export-jobs" in {m["mountPath"] for m in spec["driver"]["volumeMounts"]}  # EXPORT_JOBS_CONF


def _entrypoint(tmp_path: Path, *args: str, **env: str) -> list[str]:
    """conf/examples/entrypoint.sh run with a spark-submit and a java that print their arguments."""
    for tool in ("spark/bin/spark-submit", "java/bin/java"):
        fake = tmp_path / tool
        fake.parent.mkdir(parents=True, exist_ok=True)
        fake.write_text('#!/usr/bin/env bash\necho "SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-}"\nprintf "%s\\n" "$0" "$@"\n')
        fake.chmod(0o755)
    ran = subprocess.run(["bash", str(EXAMPLES / "entrypoint.sh"), *args], capture_output=True, text=True,
                         env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "SPARK_LOCAL_IP": "127.0.0.1",
                              "SPARK_HOME": str(tmp_path / "spark"), "JAVA_HOME": str(tmp_path / "java"), **env})
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.splitlines()


def test_the_image_entry_point_turns_the_driver_pod_into_a_client_mode_spark_submit(tmp_path):
    out = _entrypoint(tmp_path, "driver", "--properties-file", "/opt/spark/conf/spark.properties",
                      "local:///opt/export-jobs/jobs/submit.py", "run-pending", SPARK_DRIVER_BIND_ADDRESS="10.0.0.7")
    assert out == ["SPARK_LOCAL_IP=", str(tmp_path / "spark/bin/spark-submit"), "--deploy-mode", "client",
                   "--conf", "spark.driver.bindAddress=10.0.0.7", "--properties-file",
                   "/opt/spark/conf/spark.properties", "local:///opt/export-jobs/jobs/submit.py", "run-pending"]


def test_the_image_entry_point_starts_an_executor_from_sparks_variables(tmp_path):
    out = _entrypoint(tmp_path, "executor", SPARK_JAVA_OPT_1="-Dsecond", SPARK_JAVA_OPT_0="-Dfirst",
                      SPARK_JAVA_OPT_10="-Dlast", SPARK_EXECUTOR_MEMORY="2g", SPARK_DRIVER_URL="spark://d:7078",
                      SPARK_EXECUTOR_ID="3", SPARK_EXECUTOR_CORES="1", SPARK_APPLICATION_ID="spark-1",
                      SPARK_EXECUTOR_POD_IP="10.0.0.9", SPARK_EXECUTOR_POD_NAME="exec-3")
    assert out[:5] == ["SPARK_LOCAL_IP=", str(tmp_path / "java/bin/java"), "-Dfirst", "-Dsecond", "-Dlast"]
    assert out[5:9] == ["-Xms2g", "-Xmx2g", "-cp", f"{tmp_path}/spark/conf:{tmp_path}/spark/jars/*"]
    assert out[9] == "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend"
    assert out[10:] == ["--driver-url", "spark://d:7078", "--executor-id", "3", "--cores", "1", "--app-id", "spark-1",
                        "--hostname", "10.0.0.9", "--resourceProfileId", "0", "--podName", "exec-3"]


def test_the_image_entry_point_runs_any_other_command_as_export_jobs(tmp_path):
    assert _entrypoint(tmp_path, "--version")[0].startswith("export-jobs ")
