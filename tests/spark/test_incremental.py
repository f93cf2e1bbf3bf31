"""Incremental schedules: each run exports the profiles changed since the last successful run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql import functions as F

from jobs.config import load_config
from jobs.model import JobStatus
from jobs.runner import run_job
from jobs.sample import LakeSpec, generate, sample_config
from jobs.schedules import ScheduleStore, create_due_jobs, create_schedule
from jobs.store import JobStore

from ..reference import read_rows

pytestmark = pytest.mark.spark

JOB = {"fields": "personalEmail.address", "destination": {"datasetId": "audience"},
       "schema": {"name": "_xdm.context.profile"}}


def key(row) -> str:
    return next(i["id"] for _, items in row["identityMap"] for i in items if i["primary"])


def exported(config, record) -> set[str]:
    rows = read_rows(config.resolve(config.destination_datasets[0].path), f"_batchId = '{record.destination.batch_id}'")
    return {key(r) for r in rows}


def test_two_incremental_runs_export_each_changed_profile_once_even_after_a_failed_run(spark, tmp_path):
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path, event_datasets=0))
    config = load_config(conf)
    generate(spark, config, LakeSpec(profiles=100, segments=3))
    store, schedules = JobStore(config.job_table_path), ScheduleStore(config.schedule_table_path)
    create_schedule(schedules, config, {"cron": "* * * * *", "incremental": True, "job": JOB}, "demo@Org", "prod")
    now = datetime.now(UTC)

    [first] = create_due_jobs(schedules, store, config, now)
    first = run_job(store, config, first.id, spark)
    assert first.status is JobStatus.SUCCEEDED, first.errors
    assert len(exported(config, first)) == 100

    # New data: a later fragment for ten profiles, and five new profiles.
    path = config.resolve(config.profile_datasets[0].path)
    base = spark.read.format("delta").load(path)
    later = F.lit(datetime(2030, 1, 1)).cast("timestamp")
    changed = base.where(F.col("identityMap")["ECID"][0]["id"].isin([f"ecid-{i}" for i in range(10)]))
    fresh = base.where(F.col("identityMap")["ECID"][0]["id"].isin([f"ecid-{i}" for i in range(10, 15)])) \
        .withColumn("identityMap", F.create_map(F.lit("ECID"), F.array(F.struct(
            F.concat(F.lit("new-"), F.col("identityMap")["ECID"][0]["id"]).alias("id"), F.lit(True).alias("primary")))))
    changed.unionByName(fresh).withColumn("_ingestTime", later).write.format("delta").mode("append").save(path)
    expected = {f"ecid-{i}" for i in range(10)} | {f"new-ecid-{i}" for i in range(10, 15)}

    # The next slot's run fails (its lake is broken for it): it must not move the watermark.
    [failing] = create_due_jobs(schedules, store, config, now + timedelta(minutes=1))
    broken = tmp_path / "broken.toml"
    broken.write_text(conf.read_text().replace('path = "profiles/profiles_1"', 'path = "profiles/gone"'))
    assert run_job(store, load_config(broken), failing.id, spark).status is JobStatus.FAILED

    [second] = create_due_jobs(schedules, store, config, now + timedelta(minutes=2))
    second = run_job(store, config, second.id, spark)
    assert second.status is JobStatus.SUCCEEDED, second.errors
    assert exported(config, second) == expected
    assert second.filter["fromIngestTimestamp"].startswith("2024-")  # the first run's watermark

    [third] = create_due_jobs(schedules, store, config, now + timedelta(minutes=3))
    third = run_job(store, config, third.id, spark)
    assert exported(config, third) == set()  # nothing changed since
    assert schedules.list()[0].watermark.startswith("2030-01-01")
