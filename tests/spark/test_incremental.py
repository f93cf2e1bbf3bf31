"""Incremental schedules: each run exports the profiles changed since the last successful run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql import functions as F

from jobs.control import (
    JobStore,
    Lease,
    ScheduleStore,
    SegmentStore,
    create_due_jobs,
    create_job,
    create_schedule,
    create_segment,
    reap_lost_jobs,
    run_job,
    runner,
)
from jobs.engine import merge
from jobs.spec import JobStatus, load_config
from sample_lake import LakeSpec, generate, sample_config

from ..reference import read_rows

pytestmark = pytest.mark.spark

JOB = {"fields": "personalEmail.address", "destination": {"datasetId": "audience"},
       "schema": {"name": "_xdm.context.profile"}}


def key(row) -> str:
    return next(i["id"] for _, items in row["identityMap"] for i in items if i["primary"])


def exported(config, record) -> set[str]:
    rows = read_rows(config.resolve(config.destination_datasets[0].path), f"_batchId = '{record.destination.batch_id}'")
    return {key(r) for r in rows}


def incremental_deployment(spark, tmp_path):
    """A 100-profile lake with an incremental schedule due every minute: (conf, config, store, schedules)."""
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path, event_datasets=0))
    config = load_config(conf)
    generate(spark, config, LakeSpec(profiles=100, segments=3))
    store, schedules = JobStore(config.job_table_path), ScheduleStore(config.schedule_table_path)
    create_schedule(schedules, config, {"cron": "* * * * *", "incremental": True, "job": JOB}, "demo@Org", "prod")
    return conf, config, store, schedules


def add_later_fragments(spark, config, changed: range, fresh: range, year: int) -> set[str]:
    """Fragments ingested in `year`: a later one for the profiles `changed`, and new profiles made from
    the profiles `fresh`; returns the keys whose merged profile changed."""
    path = config.resolve(config.profile_datasets[0].path)
    base = spark.read.format("delta").load(path)
    later = F.lit(datetime(year, 1, 1)).cast("timestamp")
    ecid = F.col("identityMap")["ECID"][0]["id"]
    again = base.where(ecid.isin([f"ecid-{i}" for i in changed]))
    new = base.where(ecid.isin([f"ecid-{i}" for i in fresh])) \
        .withColumn("identityMap", F.create_map(F.lit("ECID"), F.array(F.struct(
            F.concat(F.lit(f"new{year}-"), ecid).alias("id"), F.lit(True).alias("primary")))))
    again.unionByName(new).withColumn("_ingestTime", later).write.format("delta").mode("append").save(path)
    return {f"ecid-{i}" for i in changed} | {f"new{year}-ecid-{i}" for i in fresh}


@pytest.mark.parametrize("merged", ["every key", "changed keys"])
def test_two_incremental_runs_export_each_changed_profile_once_even_after_a_failed_run(spark, tmp_path, monkeypatch,
                                                                                      merged):
    # A small input merges every key, then keeps the changed profiles; a larger one merges only its changed keys.
    if merged == "changed keys":
        monkeypatch.setattr(merge, "SMALL_INPUT", 0)
    conf, config, store, schedules = incremental_deployment(spark, tmp_path)
    now = datetime.now(UTC)

    [first] = create_due_jobs(schedules, store, config, now)
    first = run_job(store, config, first.id, spark)
    assert first.status is JobStatus.SUCCEEDED, first.errors
    assert len(exported(config, first)) == 100

    # New data: a later fragment for ten profiles, and five new profiles.
    expected = add_later_fragments(spark, config, range(10), range(10, 15), 2030)

    # The next slot's run fails (its lake is broken for it): it must not move the watermark.
    [failing] = create_due_jobs(schedules, store, config, now + timedelta(minutes=1))
    broken = tmp_path / "broken.toml"
    broken.write_text(conf.read_text().replace('path = "profiles/profiles_1"', 'path = "profiles/gone"'))
    assert run_job(store, load_config(broken), failing.id, spark).status is JobStatus.FAILED

    [second] = create_due_jobs(schedules, store, config, now + timedelta(minutes=2))
    second = run_job(store, config, second.id, spark)
    assert second.status is JobStatus.SUCCEEDED, second.errors
    assert exported(config, second) == expected
    assert second.to_dict()["filter"]["fromIngestTimestamp"].startswith("2024-")  # the first run's watermark

    [third] = create_due_jobs(schedules, store, config, now + timedelta(minutes=3))
    third = run_job(store, config, third.id, spark)
    assert exported(config, third) == set()  # nothing changed since
    assert schedules.list()[0].watermark.startswith("2030-01-01")


def test_a_slot_skipped_while_the_previous_run_is_active_is_covered_by_the_next_run(spark, tmp_path):
    _, config, store, schedules = incremental_deployment(spark, tmp_path)
    now = datetime.now(UTC)
    [first] = create_due_jobs(schedules, store, config, now)
    during = add_later_fragments(spark, config, range(5), range(20, 23), 2030)  # while the first waits

    assert create_due_jobs(schedules, store, config, now + timedelta(minutes=1)) == []  # first is still NEW
    assert schedules.list()[0].skipped_slots == 1
    first = run_job(store, config, first.id, spark)
    assert first.status is JobStatus.SUCCEEDED, first.errors
    assert during <= exported(config, first) and len(exported(config, first)) == 103
    after = add_later_fragments(spark, config, range(3, 8), range(30, 32), 2031)

    [third] = create_due_jobs(schedules, store, config, now + timedelta(minutes=2))
    third = run_job(store, config, third.id, spark)
    assert third.status is JobStatus.SUCCEEDED, third.errors
    # No gap: the skipped slot's data went with the run before it; no overlap: only what came since.
    assert exported(config, third) == after
    assert third.to_dict()["filter"]["fromIngestTimestamp"].startswith("2030-01-01")


def test_a_job_whose_request_id_looks_like_a_schedules_runs_as_a_plain_job(spark, tmp_path):
    _, config, store, schedules = incremental_deployment(spark, tmp_path)
    [first] = create_due_jobs(schedules, store, config, datetime.now(UTC))
    assert run_job(store, config, first.id, spark).status is JobStatus.SUCCEEDED
    add_later_fragments(spark, config, range(3), range(40, 42), 2030)
    schedule = schedules.list()[0]

    hijack = create_job(store, config, JOB, "demo@Org", "prod", request_id=f"schedule-{schedule.id}-60000")
    hijack = run_job(store, config, hijack.id, spark)
    assert hijack.status is JobStatus.SUCCEEDED, hijack.errors
    assert hijack.filter.from_ingest_timestamp is None and len(exported(config, hijack)) == 102
    assert schedules.list()[0] == schedule  # the watermark did not move


def test_an_evaluating_incremental_run_moves_the_watermark_to_at_least_its_now(spark, tmp_path):
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path, event_datasets=0, segmentation=str(tmp_path / "memberships")))
    config = load_config(conf)
    generate(spark, config, LakeSpec(profiles=50, segments=1))
    store, schedules = JobStore(config.job_table_path), ScheduleStore(config.schedule_table_path)
    segment = create_segment(SegmentStore(config.segment_table_path), config, {
        "name": "gold", "expression": {"type": "PQL", "format": "pql/text", "value": 'loyalty.tier = "gold"'},
        "schema": {"name": "_xdm.context.profile"}}, "demo@Org", "prod").id
    body = {**JOB, "filter": {"segments": [{"segmentId": segment}]}, "evaluationInfo": {"segmentation": True}}
    create_schedule(schedules, config, {"cron": "* * * * *", "incremental": True, "job": body}, "demo@Org", "prod")

    [first] = create_due_jobs(schedules, store, config, datetime.now(UTC))
    first = run_job(store, config, first.id, spark)
    assert first.status is JobStatus.SUCCEEDED, first.errors
    # The lake's data is from 2024; the write-back is ingested at the run's `now`, which the
    # watermark reaches, so the next run does not export the write-back as a change.
    assert first.evaluation_time is not None
    evaluated_at = datetime.fromtimestamp(first.evaluation_time / 1000, UTC)
    watermark = schedules.list()[0].watermark
    assert watermark is not None
    assert datetime.fromisoformat(watermark) >= evaluated_at


def test_a_retry_after_new_data_arrived_moves_the_watermark_only_as_far_as_its_commit(spark, tmp_path, monkeypatch):
    """The runner dies between its commit and the watermark's move; data arrives; the retry finds
    the commit there. It must move the watermark to what the commit read, not to the lake as it is
    now, or the new data would never be exported."""
    _, config, store, schedules = incremental_deployment(spark, tmp_path)
    now = datetime.now(UTC)
    [first] = create_due_jobs(schedules, store, config, now)

    class Died(BaseException):  # not an Exception: nothing in the runner handles it, as with a kill
        pass

    def dies(*args, **kwargs):
        raise Died("the runner died after its commit")

    monkeypatch.setattr(runner, "advance_watermark", dies)
    with pytest.raises(Died):
        run_job(store, config, first.id, spark)
    monkeypatch.undo()
    lost = store.get(first.id)
    assert lost.status is JobStatus.PROCESSING and lost.inputs is not None
    assert len(exported(config, lost)) == 100  # committed

    arrived = add_later_fragments(spark, config, range(10), range(10, 15), 2030)
    [row] = store.running()
    store.replace(lost, expected=[JobStatus.PROCESSING], lease=Lease(row["runner"], 0))  # the lease runs out
    [taken] = reap_lost_jobs(store, config)  # lostJobRetries = 0, but its batches are committed: to be finished
    assert taken.status is JobStatus.NEW and "finishes it" in taken.errors[-1].msg
    retried = run_job(store, config, first.id, spark)
    assert retried.status is JobStatus.SUCCEEDED, retried.errors
    assert retried.inputs is not None and retried.inputs.versions == lost.inputs.versions
    assert len(exported(config, retried)) == 100  # not written twice
    watermark = schedules.list()[0].watermark
    assert watermark is not None and watermark.startswith("2024-")
    assert retried.to_dict()["inputs"]["watermark"] == watermark

    [second] = create_due_jobs(schedules, store, config, now + timedelta(minutes=1))
    second = run_job(store, config, second.id, spark)
    assert second.status is JobStatus.SUCCEEDED, second.errors
    assert exported(config, second) == arrived  # no gap
