"""Retention of the job and schedule tables: after compaction and vacuum, Spark SQL and delta-rs
still read them whole, and the files no version needs are gone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, QueryBuilder

from jobs.control import JobStore, ScheduleStore, claim, create_due_jobs, create_job, create_schedule
from jobs.spec import JobStatus, load_config

pytestmark = pytest.mark.spark

JOB = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}


def data_files(path: str) -> set[str]:
    return {p.name for p in Path(path).glob("*.parquet")}


def referenced(path: str) -> set[str]:
    return {Path(uri).name for uri in DeltaTable(path).file_uris()}


def test_after_compaction_and_vacuum_the_tables_stay_readable_and_old_files_are_gone(spark, deployment):
    config = load_config(deployment)
    store, schedules = JobStore(config.job_table_path), ScheduleStore(config.schedule_table_path)
    for _ in range(55):  # the 50th create compacts
        job = create_job(store, config, JOB, "demo@Org", "prod")
        claim(store, job.id, "runner", 60_000).finish(JobStatus.SUCCEEDED)
    create_schedule(schedules, config, {"cron": "* * * * *", "job": JOB}, "demo@Org", "prod")
    start = datetime.now(UTC)
    for minute in range(1, 4):
        create_due_jobs(schedules, store, config, start + timedelta(minutes=minute))
    reader = JobStore(store.path)  # a handle opened before the vacuum
    assert len(reader.list("demo@Org", "prod", limit=100)) == 58
    store.compact()
    logs_before = len(list(Path(store.path, "_delta_log").glob("*.json")))

    for table in (store, schedules):
        assert data_files(table.path) > referenced(table.path)  # removed files pile up until a vacuum
        table.vacuum(retention_hours=0)  # as once the retention has passed
        assert data_files(table.path) == referenced(table.path)
    assert len(list(Path(store.path, "_delta_log").glob("*.json"))) < logs_before

    # delta-rs: the open handle, and a new one.
    assert [r.id for r in reader.list("demo@Org", "prod", limit=100)] == list(range(58, 0, -1))
    counted = QueryBuilder().register("jobs", DeltaTable(store.path)).execute("SELECT count(*) AS n FROM jobs")
    assert pa.table(counted).to_pylist() == [{"n": 58}]
    # Spark SQL.
    statuses = spark.sql(f"SELECT status, count(*) AS n FROM delta.`{store.path}` GROUP BY status").collect()
    assert {r["status"]: r["n"] for r in statuses} == {"SUCCEEDED": 55, "NEW": 3}
    [schedule] = spark.sql(f"SELECT lastJobId, lastSlot FROM delta.`{schedules.path}`").collect()
    assert schedule["lastJobId"] == 58
    # And both stay writable.
    assert create_job(store, config, JOB, "demo@Org", "prod").id == 59
    assert len(create_due_jobs(schedules, store, config, start + timedelta(minutes=5))) == 1
