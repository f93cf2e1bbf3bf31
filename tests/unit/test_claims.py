"""Claims are exclusive: two processes racing for the same NEW jobs never both get one."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from jobs.control import leases
from jobs.control.jobs import JobStore, StatusConflict, cancel_job, new_record
from jobs.control.leases import claim, reap_lost_jobs
from jobs.spec.config import load_config
from jobs.spec.jobs import JobStatus, parse_definition

JOB = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}


def make_jobs(store, config, n):
    definition = parse_definition(JOB)
    return [store.create(lambda i: new_record(definition, config, i, "demo@Org", "prod", "r", 1000 + i)).id
            for _ in range(n)]


def _claim_all(path: str, ids: list[int], name: str, queue) -> None:
    store = JobStore(path)
    won = []
    for job_id in ids:
        try:
            claim(store, job_id, name, 60_000)
            won.append(job_id)
        except StatusConflict:
            pass
    queue.put((name, won))


def test_two_processes_claiming_20_jobs_get_each_exactly_once(config):
    store = JobStore(config.job_table_path)
    ids = make_jobs(store, config, 20)
    queue = multiprocessing.get_context("spawn").Queue()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_claim_all, args=(store.path, ids, name, queue)) for name in ("r1", "r2")]
    for w in workers:
        w.start()
    results = dict(queue.get(timeout=120) for _ in workers)
    for w in workers:
        w.join()
    assert sorted(results["r1"] + results["r2"]) == ids
    rows = store._query("SELECT id, status, runner FROM jobs ORDER BY id")
    assert all(r["status"] == "PROCESSING" for r in rows)
    assert {r["id"]: r["runner"] for r in rows} == {
        **dict.fromkeys(results["r1"], "r1"), **dict.fromkeys(results["r2"], "r2")}


def test_an_expired_lease_fails_the_job_and_a_renewal_by_the_lost_runner_is_refused(config):
    store = JobStore(config.job_table_path)
    job_id = make_jobs(store, config, 1)[0]
    handle = claim(store, job_id, "gone", lease_ms=-1)  # already expired
    [taken] = reap_lost_jobs(store, config)
    assert taken.status is JobStatus.FAILED and taken.errors[-1].code == "RUNNER_LOST"
    assert "gone" in taken.errors[-1].msg and "nothing was written" in taken.errors[-1].msg
    from jobs.control.leases import LostJob

    try:
        handle.update(stage="still here?")
        raise AssertionError("a lost runner must not write")
    except LostJob:
        pass
    assert store.get(job_id).status is JobStatus.FAILED


def test_a_lost_job_is_retried_when_configured(config, tmp_path):
    conf = tmp_path / "retry.toml"
    conf.write_text("lostJobRetries = 1\n" + (tmp_path / "export.toml").read_text())
    retrying = load_config(conf)
    store = JobStore(retrying.job_table_path)
    job_id = make_jobs(store, retrying, 1)[0]
    claim(store, job_id, "gone", lease_ms=-1)
    [again] = reap_lost_jobs(store, retrying)
    assert again.status is JobStatus.NEW and again.retries == 1
    assert "will be retried (retry 1 of 1, 0 left after it)" in again.errors[-1].msg
    assert "Create the job again" not in again.errors[-1].msg
    claim(store, job_id, "gone-too", lease_ms=-1)
    [failed] = reap_lost_jobs(store, retrying)
    assert failed.status is JobStatus.FAILED and len(failed.errors) == 2
    assert failed.errors[-1].msg.endswith("retried 1 times already (lostJobRetries); create the job again to rerun it.")


def test_cancel_new_is_immediate_and_cancel_of_a_running_job_marks_it_cancelling(config):
    store = JobStore(config.job_table_path)
    new, running = make_jobs(store, config, 2)
    assert cancel_job(store, new, "demo@Org", "prod").status is JobStatus.CANCELLED
    handle = claim(store, running, "r", 60_000)
    cancelled = []
    handle.on_cancel = lambda: cancelled.append(True)
    assert cancel_job(store, running, "demo@Org", "prod").status is JobStatus.CANCELLING
    handle.update(stage="exporting")  # the runner's next write notices the cancel
    assert cancelled and handle.cancelled.is_set()
    assert handle.finish(JobStatus.CANCELLED).status is JobStatus.CANCELLED
    with pytest.raises(StatusConflict, match="CANCELLED"):  # cancelling a finished job is refused
        cancel_job(store, running, "demo@Org", "prod")
    assert json.loads(json.dumps(store.get(running).to_dict()))["status"] == "CANCELLED"


def test_a_renewal_writes_the_lease_and_stage_columns_and_leaves_the_stored_record_alone(config):
    store = JobStore(config.job_table_path)
    job_id = make_jobs(store, config, 1)[0]
    handle = claim(store, job_id, "r", 60_000)
    stored = store._query(f"SELECT record, leaseUntil FROM jobs WHERE id = {job_id}")[0]
    time.sleep(0.01)
    handle.update(stage="exporting: 3/8 tasks")
    after = store._query(f"SELECT record, leaseUntil, stage FROM jobs WHERE id = {job_id}")[0]
    assert after["record"] == stored["record"] and after["leaseUntil"] > stored["leaseUntil"]
    seen = store.get(job_id)
    assert seen.stage == after["stage"] == "exporting: 3/8 tasks"
    assert seen.update_time == handle.record.update_time > json.loads(stored["record"])["updateTime"]
    assert [r.stage for r in store.list("demo@Org", "prod")] == ["exporting: 3/8 tasks"]
    # A change beyond the stage writes the record, and the end clears the stage.
    handle.update(stage="writing", retries=0)
    assert json.loads(store._query(f"SELECT record FROM jobs WHERE id = {job_id}")[0]["record"])["stage"] == "writing"
    assert store.get(job_id).stage == "writing"
    assert handle.finish(JobStatus.SUCCEEDED).stage is None and store.get(job_id).stage is None


def test_a_job_table_without_the_stage_column_gains_it(config):
    store = JobStore(config.job_table_path)
    job_id = make_jobs(store, config, 1)[0]
    from deltalake import DeltaTable, write_deltalake

    older = DeltaTable(store.path).to_pyarrow_table().drop_columns(["stage"])
    write_deltalake(store.path, older, mode="overwrite", schema_mode="overwrite")
    again = JobStore(store.path)
    handle = claim(again, job_id, "r", 60_000)
    handle.update(stage="exporting")
    assert again.get(job_id).stage == "exporting"


def test_maintenance_compacts_small_files_and_keeps_every_job(config):
    store = JobStore(config.job_table_path)
    ids = make_jobs(store, config, 55)  # each create adds a file; every 50th commit compacts
    table = store._table()
    assert table is not None
    assert len(table.file_uris()) < 20
    listed = [r.id for r in store.list("demo@Org", "prod", limit=100)]
    assert listed == sorted(ids, reverse=True)
    # Another store (another process) sees the compacted table too.
    assert JobStore(store.path).get(ids[0]).id == ids[0]


def _orphan(store, name: str, hours_old: float) -> Path:
    """A data file that no commit names, as a writer killed before its commit leaves it."""
    path = Path(store.path) / name
    path.write_bytes(b"PAR1")
    when = time.time() - hours_old * 3600
    os.utime(path, (when, when))
    return path


def test_maintenance_vacuums_what_the_retention_no_longer_keeps_at_most_hourly(config):
    store = JobStore(config.job_table_path)
    ids = make_jobs(store, config, 3)
    for job_id in ids:
        claim(store, job_id, "r", 60_000).finish(JobStatus.SUCCEEDED)  # each change leaves a removed file
    on_disk = {p.name for p in Path(store.path).glob("*.parquet")}
    old, recent = _orphan(store, "old.parquet", 2), _orphan(store, "recent.parquet", 0.5)

    store.maintain(retention_hours=1)
    assert not old.exists() and recent.exists()
    # Files removed by the changes just made are within the retention: a reader may still need them.
    assert {p.name for p in Path(store.path).glob("*.parquet")} == on_disk | {"recent.parquet"}
    table = store._table()
    assert table is not None
    assert table.metadata().configuration["delta.deletedFileRetentionDuration"] == "interval 1 hours"

    again = _orphan(store, "again.parquet", 2)
    store.maintain(retention_hours=1)  # within the hour: no second vacuum
    assert again.exists()
    assert [r.id for r in store.list("demo@Org", "prod")] == sorted(ids, reverse=True)


@pytest.mark.parametrize("cancelling", [False, True])
def test_a_lost_job_whose_batches_are_committed_is_finished_not_failed(config, monkeypatch, cancelling):
    """lostJobRetries = 0; the runner died after the commit (of an evaluating job: before its write-back):
    the job is NEW again, cancel or not, and a later run finishes it; after FINISH_ATTEMPTS, FAILED."""
    monkeypatch.setattr(leases, "batches_committed", lambda store, config, record: True)
    store = JobStore(config.job_table_path)
    job_id = make_jobs(store, config, 1)[0]
    for attempt in range(leases.FINISH_ATTEMPTS):
        claim(store, job_id, f"gone-{attempt}", lease_ms=-1)
        if cancelling:
            cancel_job(store, job_id, "demo@Org", "prod")
        [again] = reap_lost_jobs(store, config)
        assert again.status is JobStatus.NEW and again.retries == attempt + 1
        assert "were committed before it was lost" in again.errors[-1].msg
        assert again.errors[-1].msg.endswith("the next run finishes it without writing its batches twice.")
    claim(store, job_id, "gone-last", lease_ms=-1)
    [failed] = reap_lost_jobs(store, config)
    assert failed.status is JobStatus.FAILED
