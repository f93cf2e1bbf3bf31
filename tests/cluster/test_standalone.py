"""A real multi-process Spark standalone cluster on 127.0.0.1: master, worker, spark-submit.

Slow (three JVMs start): marked `cluster`; `./scripts/test -m "not cluster"` skips it locally,
CI runs it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.config import load_config
from jobs.model import JobStatus
from jobs.sample import sample_config
from jobs.service import create_job
from jobs.store import JobStore

from ..reference import read_rows

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
JOB = {"fields": "personalEmail.address, identities.id", "filter": {"segments": [{"segmentId": "segment-01"}]},
       "destination": {"datasetId": "audience", "segmentPerBatch": True}, "schema": {"name": "_xdm.context.profile"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> str:
    import pyspark

    return os.path.dirname(pyspark.__file__)


def wait_for_port(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A standalone master and one worker (1 core, 1 GiB), stopped afterwards."""
    logs = tmp_path_factory.mktemp("cluster-logs")
    env = {**os.environ, "SPARK_HOME": spark_home(), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_WORKER_DIR": str(logs / "work")}
    spark_class = os.path.join(spark_home(), "bin", "spark-class")
    port, ui, worker_ui = free_port(), free_port(), free_port()
    started: list[subprocess.Popen] = []
    try:
        started.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
             "--webui-port", str(ui)],
            env=env, stdout=open(logs / "master.log", "w"), stderr=subprocess.STDOUT, start_new_session=True))
        url = f"spark://127.0.0.1:{port}"
        wait_for_port(port)
        started.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", "1",
             "--memory", "1g", "--webui-port", str(worker_ui)],
            env=env, stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 90
        while "Successfully registered with master" not in (logs / "worker.log").read_text():
            assert time.monotonic() < deadline, (logs / "worker.log").read_text()[-2000:]
            time.sleep(0.5)
        yield url
    finally:  # stop what was started, even when starting failed half-way
        for process in reversed(started):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)


def test_spark_submit_runs_a_job_on_the_standalone_cluster(cluster, lake, tmp_path):
    root, _ = lake
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(root, job_table=str(tmp_path / "jobs"), destination=str(tmp_path / "out")))
    config = load_config(conf)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, JOB, "demo@Org", "prod")

    result = subprocess.run(
        [str(ROOT / "scripts" / "submit"), "--master", cluster, "--deploy-mode", "client",
         "--conf", "spark.executor.memory=512m", "--conf", "spark.driver.host=127.0.0.1",
         "--", "--conf", str(conf), "--job-id", str(record.id)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    # spark-submit merges the driver's stderr (its logs) into stdout: the records are the JSON line.
    records = [line for line in result.stdout.splitlines() if line.startswith("[{")]
    assert records, result.stdout[-3000:]
    [done] = json.loads(records[-1])

    assert done["status"] == JobStatus.SUCCEEDED.value, done.get("errors")
    assert done["computeGatewayJobId"]["exportJob"].startswith("app-")  # a standalone application id
    rows = read_rows(config.resolve(config.destination_datasets[0].path))
    assert len(rows) == done["metrics"]["totalExportedProfileCounter"] > 0
    assert store.get(record.id).status is JobStatus.SUCCEEDED


def test_submit_without_app_arguments_is_a_usage_error():
    result = subprocess.run([str(ROOT / "scripts" / "submit"), "--master", "local[1]"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "usage" in result.stderr


def test_submit_entry_point_rejects_ambiguous_arguments(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "jobs" / "submit.py"), "--conf", "x.toml"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--job-id" in result.stderr
