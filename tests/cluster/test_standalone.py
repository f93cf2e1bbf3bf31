"""A real multi-process Spark standalone cluster on 127.0.0.1: a master, two one-core workers,
spark-submit in client mode, and the packed driver environment of cluster deploy mode.

Each worker runs one executor of the application, so the export's shuffle crosses JVMs.
Slow (a master, two workers, a driver and two executors start, and the PEX is built): marked
`cluster`; `./scripts/test -m "not cluster"` skips it locally, CI runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.clustered import ACROSS_HOSTS
from benchmarks.standalone import standalone_cluster
from benchmarks.tasks import event_log_conf, events, group_metrics, latest_group
from jobs.control import JobStore, create_job
from jobs.engine import DRIVER_CONF, EMBEDDED_TUNING, REQUIRED_CONF, SUBMITTED_TUNING
from jobs.spec import JobStatus, load_config
from sample_lake import sample_config

from ..reference import read_rows

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
PEX = ROOT / "build" / "export-jobs.pex"
JOB = {"fields": "personalEmail.address, identities.id", "filter": {"segments": [{"segmentId": "segment-01"}]},
       "destination": {"datasetId": "audience", "segmentPerBatch": True}, "schema": {"name": "_xdm.context.profile"}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A standalone master and two workers (1 core, 1 GiB each), stopped afterwards."""
    with standalone_cluster(tmp_path_factory.mktemp("cluster"), workers=2, cores=1, memory="1g") as started:
        yield started


@pytest.fixture(scope="module")
def packed():
    """build/export-jobs.pex, built afresh by scripts/pack (scripts/submit --pex then finds it current)."""
    subprocess.run([str(ROOT / "scripts" / "pack")], check=True, capture_output=True, timeout=600)
    return PEX


def submit(cluster, conf: Path, job_id: int, logs: Path, *options: str) -> list[dict]:
    """scripts/submit in client mode with an event log; the final records."""
    short_lived = {"spark.executor.extraJavaOptions": os.environ["SPARK_SUBMIT_OPTS"]}  # as tests/conftest.py
    settings = [arg for key, value in {**event_log_conf(logs), **ACROSS_HOSTS, **short_lived}.items()
                for arg in ("--conf", f"{key}={value}")]
    result = subprocess.run(
        [str(ROOT / "scripts" / "submit"), *options, "--master", cluster.url, "--deploy-mode", "client",
         "--conf", "spark.executor.memory=512m", "--conf", "spark.driver.host=127.0.0.1", *settings,
         "--", "--conf", str(conf), "--job-id", str(job_id)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    # spark-submit merges the driver's stderr (its logs) into stdout: the records are the JSON line.
    records = [line for line in result.stdout.splitlines() if line.startswith("[{")]
    assert records, result.stdout[-3000:]
    return json.loads(records[-1])


def a_job(lake, tmp_path):
    root, _ = lake
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(root, job_table=str(tmp_path / "jobs"), destination=str(tmp_path / "out")))
    config = load_config(conf)
    store = JobStore(config.job_table_path)
    return conf, config, store, create_job(store, config, JOB, "demo@Org", "prod")


def spark_properties(folder: Path, application_id: str) -> dict[str, str]:
    environment = next(e for e in events(folder, application_id) if e["Event"] == "SparkListenerEnvironmentUpdate")
    return dict(environment["Spark Properties"])


def test_spark_submit_runs_a_job_on_two_workers(cluster, lake, tmp_path):
    conf, config, store, record = a_job(lake, tmp_path)
    logs = tmp_path / "event-logs"
    [done] = submit(cluster, conf, record.id, logs)

    assert done["status"] == JobStatus.SUCCEEDED.value, done.get("errors")
    app = done["computeGatewayJobId"]["exportJob"]
    assert app.startswith("app-")  # a standalone application id
    rows = read_rows(config.resolve(config.destination_datasets[0].path))
    assert len(rows) == done["metrics"]["totalExportedProfileCounter"] > 0
    assert store.get(record.id).status is JobStatus.SUCCEEDED
    # One executor on each worker, and the merge's shuffle fetches blocks from the other one.
    assert all((worker / app).is_dir() for worker in cluster.worker_dirs)
    assert group_metrics(logs, app, latest_group(logs, app, "export-job-")).total("remote_read_bytes") > 0
    # Under spark-submit: the UI is Spark's (on), the required and the driver's settings are
    # there, and of the embedded tuning only what SUBMITTED_TUNING keeps.
    properties = spark_properties(logs, app)
    assert properties.get("spark.ui.enabled", "true") == "true"
    assert (REQUIRED_CONF | DRIVER_CONF).items() <= properties.items()
    for key in EMBEDDED_TUNING:
        assert properties.get(key) == SUBMITTED_TUNING.get(key), key


def test_the_packed_environment_runs_from_another_folder(packed, tmp_path):
    elsewhere = tmp_path / "node"
    elsewhere.mkdir()
    shutil.copy(packed, elsewhere)
    shutil.copy(ROOT / "jobs" / "submit.py", elsewhere)  # as spark-submit ships the main file, alone
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PEX_ROOT"] = str(tmp_path / "pex-root")  # a node that has never unpacked it

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([f"./{packed.name}", *args], cwd=elsewhere, env=env, capture_output=True, text=True,
                              timeout=300)

    imported = run("-c", "import jobs, pyspark, pydantic, deltalake; print(jobs.__file__)")
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stdout.startswith(env["PEX_ROOT"])  # the package inside the PEX, not this checkout
    helped = run("submit.py", "--help")
    assert helped.returncode == 0 and "--job-id" in helped.stdout, helped.stderr[-3000:]


def test_the_packed_driver_runs_a_job_in_client_mode(cluster, packed, lake, tmp_path):
    conf, config, _, record = a_job(lake, tmp_path)
    logs = tmp_path / "event-logs"
    [done] = submit(cluster, conf, record.id, logs, "--pex")

    assert done["status"] == JobStatus.SUCCEEDED.value, done.get("errors")
    app = done["computeGatewayJobId"]["exportJob"]
    assert spark_properties(logs, app)["spark.pyspark.python"] == f"./{packed.name}"
    assert all(list((worker / app).rglob(packed.name)) for worker in cluster.worker_dirs)  # shipped with --files
    assert len(read_rows(config.resolve(config.destination_datasets[0].path))) == \
        done["metrics"]["totalExportedProfileCounter"] > 0


def test_submit_without_app_arguments_is_a_usage_error():
    result = subprocess.run([str(ROOT / "scripts" / "submit"), "--master", "local[1]"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "usage" in result.stderr


def test_submit_entry_point_rejects_ambiguous_arguments(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "jobs" / "submit.py"), "--conf", "x.toml"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--job-id" in result.stderr
