"""Jobs under concurrency, cancellation and crashes, with real runner processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from deltalake import DeltaTable

from jobs.control import JobStore, cancel_job, create_job, reap_lost_jobs, run_job
from jobs.spec import JobRecord, JobStatus, load_config
from sample_lake import LakeSpec, generate, sample_config

pytestmark = pytest.mark.e2e

JOB = {"fields": "personalEmail.address", "filter": {"segments": [{"segmentId": "segment-01"}]},
       "destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}


@pytest.fixture(scope="module")
def big_lake(spark, tmp_path_factory):
    """A lake large enough that an export runs for several seconds on two cores."""
    root = tmp_path_factory.mktemp("big-lake")
    conf = root / "lake.toml"
    conf.write_text(sample_config(root))
    generate(spark, load_config(conf), LakeSpec(profiles=150_000, segments=5, fragments_per_profile=2,
                                                events_per_profile=0))
    return root


def deployment_over(root, tmp_path, lease_seconds=2):
    conf = tmp_path / "export.toml"
    conf.write_text(f"leaseSeconds = {lease_seconds}\n"
                    + sample_config(root, job_table=str(tmp_path / "jobs"), destination=str(tmp_path / "out")))
    return conf, load_config(conf)


def wait_for(predicate, timeout=180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def exporting(store, job_id):
    stage = store.get(job_id).stage or ""
    return stage.startswith("exporting")


def test_cancel_of_a_running_job_stops_spark_and_writes_nothing(spark, big_lake, tmp_path):
    _, config = deployment_over(big_lake, tmp_path)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, JOB, "demo@Org", "prod")
    outcome: dict[str, JobRecord] = {}
    runner = threading.Thread(target=lambda: outcome.update(r=run_job(store, config, record.id, spark)))
    runner.start()
    wait_for(lambda: exporting(store, record.id))
    time.sleep(1.0)
    assert cancel_job(store, record.id, "demo@Org", "prod").status is JobStatus.CANCELLING
    cancelled_at = time.monotonic()
    runner.join(120)
    took = time.monotonic() - cancelled_at

    assert outcome["r"].status is JobStatus.CANCELLED, outcome["r"].to_json()
    assert store.get(record.id).status is JobStatus.CANCELLED
    assert took < 15, f"cancel took {took:.1f}s"
    assert not DeltaTable.is_deltatable(config.resolve(config.destination_datasets[0].path))
    print(f"cancel of a running job took {took:.1f}s")


def test_kill_9_of_a_runner_mid_job_ends_failed_with_no_partial_batch(big_lake, tmp_path):
    conf, config = deployment_over(big_lake, tmp_path)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, JOB, "demo@Org", "prod")
    process = subprocess.Popen([sys.executable, "-m", "jobs", "--conf", str(conf), "run", str(record.id)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: exporting(store, record.id))
        time.sleep(1.0)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the runner and its JVM, mid-export
        process.wait()
    assert store.get(record.id).status is JobStatus.PROCESSING
    time.sleep(config.lease_seconds + 0.5)
    [taken] = reap_lost_jobs(store, config)

    assert taken.id == record.id and taken.status is JobStatus.FAILED
    assert taken.errors[-1].code == "RUNNER_LOST" and "nothing was written" in taken.errors[-1].msg
    destination = config.resolve(config.destination_datasets[0].path)
    assert not DeltaTable.is_deltatable(destination)


def test_two_runner_processes_run_each_of_4_jobs_exactly_once(lake, tmp_path):
    root, _ = lake
    conf, config = deployment_over(root, tmp_path, lease_seconds=30)
    store = JobStore(config.job_table_path)
    ids = [create_job(store, config, JOB, "demo@Org", "prod").id for _ in range(4)]
    runners = [subprocess.Popen([sys.executable, "-m", "jobs", "--conf", str(conf), "run-pending"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
               for _ in range(2)]
    outputs = [json.loads(r.communicate(timeout=900)[0]) for r in runners]

    ran = [r["id"] for out in outputs for r in out]
    assert sorted(ran) == ids  # each job run by exactly one runner, none twice
    failed = [(r["id"], r["errors"]) for out in outputs for r in out if r["status"] != "SUCCEEDED"]
    assert not failed
    assert all(outputs), "both runners should have had work"
    history = DeltaTable(config.resolve(config.destination_datasets[0].path)).history()
    committed = sorted(json.loads(h["userMetadata"])["jobId"] for h in history if h.get("userMetadata"))
    assert committed == ids
