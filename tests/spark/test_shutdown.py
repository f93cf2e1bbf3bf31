"""A runner that is stopping gives its running job back as NEW (JobHandle.release) instead of leaving
its lease to run out; the next runner runs it to the end."""

from __future__ import annotations

import threading
import time

import pytest

from jobs.control import RUNNER_STOPPED, JobStore, RunnerLoop, create_job, run_job, run_pending
from jobs.control import runner as runner_module
from jobs.spec import JobStatus, load_config

pytestmark = pytest.mark.spark

JOB = {"fields": "personalEmail.address", "filter": {"segments": [{"segmentId": "segment-01"}]},
       "destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}


def wait_until_new(store: JobStore, job_id: int) -> None:
    deadline = time.monotonic() + 30
    while store.get(job_id).status is not JobStatus.NEW:
        assert time.monotonic() < deadline, f"job {job_id} was not released: {store.get(job_id)}"
        time.sleep(0.05)


@pytest.fixture
def queued(deployment):
    """A config, its job table and a NEW job in it."""
    config = load_config(deployment)
    store = JobStore(config.job_table_path)
    return config, store, create_job(store, config, JOB, "demo@Org", "prod")


def test_a_released_job_is_new_again_with_no_lease_and_the_next_runner_finishes_it(spark, queued, monkeypatch):
    config, store, job = queued
    stop, release = threading.Event(), threading.Event()

    def export_until_released(*_args, **_kwargs):
        stop.set()
        release.set()  # what the SIGTERM handler does once shutdownGraceSeconds have passed
        wait_until_new(store, job.id)
        raise RuntimeError("the job group was cancelled")  # as Spark reports its stopped work

    with monkeypatch.context() as patched:
        patched.setattr(runner_module, "run_export", export_until_released)
        [released] = run_pending(store, config, spark_factory=lambda: spark, stop=stop, release=release)

    assert released.status is JobStatus.NEW
    assert [e.code for e in released.errors] == [RUNNER_STOPPED]
    assert store.get(job.id) == released  # the failed export wrote nothing more after the release
    assert store.running() == []  # no lease left to run out
    done = run_job(store, config, job.id, spark)
    assert done.status is JobStatus.SUCCEEDED, done.errors


def test_a_server_stopping_gives_its_running_job_back_after_the_grace(spark, queued, monkeypatch):
    config, store, job = queued
    exporting, released = threading.Event(), threading.Event()

    def export_until_released(*_args, **_kwargs):
        exporting.set()
        assert released.wait(30), "the loop did not release the job"
        raise RuntimeError("the job group was cancelled")

    monkeypatch.setattr(runner_module, "run_export", export_until_released)
    loop = RunnerLoop(store, config, poll_seconds=0.1, spark_factory=lambda: spark)
    loop.start()
    assert exporting.wait(60)
    stopping = threading.Thread(target=loop.stop, args=(0.2,))
    stopping.start()
    wait_until_new(store, job.id)
    released.set()
    stopping.join(30)
    assert not stopping.is_alive() and not loop.ready()
    assert [e.code for e in store.get(job.id).errors] == [RUNNER_STOPPED]
