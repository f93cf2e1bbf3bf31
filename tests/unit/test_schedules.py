"""Schedules: cron slots, validation, one job per slot across schedulers, the schedule a job
records (never a request), one active run per incremental schedule (no Spark)."""

from __future__ import annotations

import json
import multiprocessing
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from jobs.control.jobs import JobStore, cancel_job, create_job
from jobs.control.leases import claim
from jobs.control.schedules import (
    CLAIM_GRACE_MS,
    FAILURES_BEFORE_FAILED,
    SCHEDULE_TABLE_SCHEMA,
    ScheduleNotFound,
    ScheduleStore,
    advance_watermark,
    create_due_jobs,
    create_schedule,
    evaluations_of,
    incremental_window,
)
from jobs.control.segments import SegmentConflict, SegmentNotFound, SegmentStore, create_segment, delete_segment
from jobs.spec.config import load_config
from jobs.spec.errors import RequestRejected
from jobs.spec.jobs import JobStatus, ScheduleRef
from jobs.spec.schedules import latest_slot, parse_cron
from sample_lake import empty_table, sample_config

JOB = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
T = datetime(2026, 3, 4, 10, 37, tzinfo=UTC)  # a Wednesday
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("cron, slot", [
    ("@hourly", datetime(2026, 3, 4, 10, 0)),
    ("*/15 * * * *", datetime(2026, 3, 4, 10, 30)),
    ("0 6,18 * * *", datetime(2026, 3, 4, 6, 0)),
    ("0 18 * * *", datetime(2026, 3, 3, 18, 0)),
    ("30 9 * * 1-5", datetime(2026, 3, 4, 9, 30)),
    ("0 0 1 * *", datetime(2026, 3, 1, 0, 0)),
    ("0 0 * * 0", datetime(2026, 3, 1, 0, 0)),  # Sunday
])
def test_latest_slot(cron, slot):
    assert latest_slot(cron, T, EPOCH) == slot.replace(tzinfo=UTC)


def test_no_slot_before_the_schedule_existed():
    assert latest_slot("0 0 1 1 *", T, datetime(2026, 2, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize("cron", ["* * *", "61 * * * *", "a * * * *", "5-1 * * * *", "*/0 * * * *"])
def test_bad_cron_is_rejected(cron):
    with pytest.raises(ValueError, match="cron"):
        parse_cron(cron)


def test_schedule_validation_names_the_field(config):
    schedules = ScheduleStore(config.schedule_table_path)
    with pytest.raises(RequestRejected) as caught:
        create_schedule(schedules, config, {"cron": "99 * * * *", "job": dict(JOB, fields="nope")}, "o", "s")
    assert {p.path for p in caught.value.problems} == {"cron"}
    with pytest.raises(RequestRejected) as caught:
        create_schedule(schedules, config, {"cron": "@hourly", "job": dict(JOB, fields="nope")}, "demo@Org", "prod")
    assert [p.path for p in caught.value.problems] == ["job.fields"]
    with pytest.raises(RequestRejected) as caught:
        create_schedule(schedules, config, {"cron": "@hourly", "incremental": True,
                                            "job": dict(JOB, filter={"fromIngestTimestamp": "2024-01-01T00:00:00Z"})},
                        "demo@Org", "prod")
    assert [p.path for p in caught.value.problems] == ["job.filter.fromIngestTimestamp"]
    assert schedules.list() == []


def _schedule_once(conf_path: str, queue) -> None:
    from jobs.spec.config import load_config

    config = load_config(conf_path)
    created = create_due_jobs(ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path), config)
    queue.put([r.id for r in created])


def test_two_schedulers_create_one_job_per_slot(config, tmp_path):
    schedules = ScheduleStore(config.schedule_table_path)
    schedule = create_schedule(schedules, config, {"cron": "* * * * *", "job": JOB}, "demo@Org", "prod")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_schedule_once, args=(str(tmp_path / "export.toml"), queue)) for _ in range(2)]
    for w in workers:
        w.start()
    created = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join()
    store = JobStore(config.job_table_path)
    jobs = store.list("demo@Org", "prod", 10)
    # Both ran within the same minute (or the second found the slot taken): one job.
    assert len(jobs) == len(created[0]) + len(created[1]) and len(jobs) in (1, 2)
    if len(jobs) == 2:  # the minute turned between the two: two slots, never one slot twice
        assert len({j.request_id for j in jobs}) == 2
    assert all(j.request_id.startswith(f"schedule-{schedule.id}-") for j in jobs)
    last_slot = schedules.list()[0].last_slot
    assert last_slot is not None
    assert create_due_jobs(schedules, store, config, now=datetime.fromtimestamp(last_slot / 1000, UTC)) == []
    schedules.delete(schedule.id, "demo@Org", "prod")
    assert schedules.list() == []
    with pytest.raises(ScheduleNotFound):
        schedules.delete(schedule.id, "demo@Org", "prod")


# ---------------------------------------------------------------- the schedule of a job


INCREMENTAL = {"cron": "* * * * *", "incremental": True, "job": JOB}


def minute(n: int, second: int = 0) -> datetime:
    """A time n minutes from now, at `second` past the minute (after any schedule made now)."""
    return (datetime.now(UTC) + timedelta(minutes=n + 1)).replace(second=second, microsecond=0)


def test_a_scheduled_job_names_its_schedule_and_slot(config):
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    schedule = create_schedule(schedules, config, INCREMENTAL, "demo@Org", "prod")
    [record] = create_due_jobs(schedules, store, config, minute(0, 30))
    slot = int(minute(0).timestamp() * 1000)
    assert record.schedule == ScheduleRef(id=schedule.id, slot=slot)
    assert store.get(record.id).to_dict()["schedule"] == {"id": schedule.id, "slot": slot}
    shown = schedules.get(schedule.id, "demo@Org", "prod").to_dict()
    assert (shown["lastSlot"], shown["lastJobId"], shown["skippedSlots"]) == (slot, record.id, 0)


def test_a_request_id_shaped_like_a_schedules_is_only_stored(config):
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    schedule = create_schedule(schedules, config, INCREMENTAL, "demo@Org", "prod")
    schedules.advance_watermark(schedule.id, "demo@Org", "prod", 1_700_000_000_000_000)
    before = schedules.get(schedule.id, "demo@Org", "prod")
    record = create_job(store, config, JOB, "demo@Org", "prod", request_id=f"schedule-{schedule.id}-60000")

    assert record.request_id == f"schedule-{schedule.id}-60000" and record.schedule is None
    assert incremental_window(schedules, record) == record
    advance_watermark(schedules, record, 1_900_000_000_000_000)
    assert schedules.get(schedule.id, "demo@Org", "prod") == before


def test_schedule_lookups_stay_in_the_jobs_org_and_sandbox(config):
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    create_schedule(schedules, config, INCREMENTAL, "demo@Org", "prod")
    [record] = create_due_jobs(schedules, store, config, minute(0))
    assert record.schedule is not None
    schedules.advance_watermark(record.schedule.id, "demo@Org", "prod", 1_700_000_000_000_000)
    assert incremental_window(schedules, record).to_dict()["filter"]["fromIngestTimestamp"] == "2023-11-14T22:13:20Z"

    for org, sandbox in (("other@Org", "prod"), ("demo@Org", "dev")):
        elsewhere = record.updated(ims_org_id=org, sandbox_name=sandbox)
        assert incremental_window(schedules, elsewhere) == elsewhere
        advance_watermark(schedules, elsewhere, 1_900_000_000_000_000)
        with pytest.raises(ScheduleNotFound):
            schedules.delete(record.schedule.id, org, sandbox)
    assert schedules.list()[0].watermark == "2023-11-14T22:13:20Z"


# ---------------------------------------------------------------- one active run per incremental schedule


def test_an_incremental_schedule_skips_slots_while_its_previous_run_is_active(config):
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    schedule = create_schedule(schedules, config, INCREMENTAL, "demo@Org", "prod")
    [first] = create_due_jobs(schedules, store, config, minute(0))

    assert create_due_jobs(schedules, store, config, minute(1)) == []  # first is NEW
    assert create_due_jobs(schedules, store, config, minute(1, 40)) == []  # the same slot: counted once
    handle = claim(store, first.id, "runner", 60_000)
    assert create_due_jobs(schedules, store, config, minute(2)) == []  # first is PROCESSING
    shown = schedules.get(schedule.id, "demo@Org", "prod").to_dict()
    assert (shown["skippedSlots"], shown["lastSkippedSlot"]) == (2, int(minute(2).timestamp() * 1000))
    assert shown["lastJobId"] == first.id

    handle.finish(JobStatus.SUCCEEDED)
    assert create_due_jobs(schedules, store, config, minute(2, 30)) == []  # a skipped slot never runs late
    [second] = create_due_jobs(schedules, store, config, minute(3))
    assert second.schedule is not None
    assert second.schedule.slot == int(minute(3).timestamp() * 1000)
    assert schedules.list()[0].skipped_slots == 2


@pytest.mark.parametrize("ending", [JobStatus.FAILED, JobStatus.CANCELLED])
def test_a_run_that_ended_otherwise_frees_the_schedule_too(config, ending):
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    create_schedule(schedules, config, INCREMENTAL, "demo@Org", "prod")
    [first] = create_due_jobs(schedules, store, config, minute(0))
    if ending is JobStatus.CANCELLED:
        cancel_job(store, first.id, "demo@Org", "prod")
    else:
        claim(store, first.id, "runner", 60_000).finish(ending)
    assert len(create_due_jobs(schedules, store, config, minute(1))) == 1


def test_a_full_schedule_runs_every_slot(config):
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    create_schedule(schedules, config, {"cron": "* * * * *", "job": JOB}, "demo@Org", "prod")
    assert [len(create_due_jobs(schedules, store, config, minute(n))) for n in range(3)] == [1, 1, 1]


def test_a_slot_claimed_by_a_scheduler_that_died_blocks_only_for_the_grace(config):
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    schedule = create_schedule(schedules, config, INCREMENTAL, "demo@Org", "prod")
    claimed_at = minute(0, 50)
    assert schedules.claim_slot(schedule, int(minute(0).timestamp() * 1000), int(claimed_at.timestamp() * 1000))

    # 10 s later, another scheduler may still be creating that slot's job.
    assert create_due_jobs(schedules, store, config, minute(1)) == []
    later = claimed_at.timestamp() * 1000 + CLAIM_GRACE_MS
    [job] = create_due_jobs(schedules, store, config, datetime.fromtimestamp(later / 1000 + 60, UTC))
    assert schedules.list()[0].skipped_slots == 1 and schedules.list()[0].last_job_id == job.id


def _schedule_at(conf_path: str, at: datetime, queue) -> None:
    from jobs.spec.config import load_config

    config = load_config(conf_path)
    created = create_due_jobs(ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path), config, at)
    queue.put([r.id for r in created])


def test_schedulers_racing_on_two_slots_start_one_run_of_an_incremental_schedule(config, tmp_path):
    schedules = ScheduleStore(config.schedule_table_path)
    create_schedule(schedules, config, INCREMENTAL, "demo@Org", "prod")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    conf = str(tmp_path / "export.toml")
    # Four schedulers within two seconds around a minute's turn: two slots.
    times = [minute(0, 59), minute(1), minute(1), minute(1, 1)]
    workers = [ctx.Process(target=_schedule_at, args=(conf, at, queue)) for at in times]
    for w in workers:
        w.start()
    created = [job for _ in workers for job in queue.get(timeout=120)]
    for w in workers:
        w.join()
    # Whichever won, the others found its slot taken, a later slot taken, or its job active.
    assert len(created) == 1
    store = JobStore(config.job_table_path)
    assert [j.id for j in store.list("demo@Org", "prod")] == created
    assert schedules.list()[0].last_job_id == created[0]


# ---------------------------------------------------------------- a broken schedule stops no one


@pytest.fixture
def evaluating(tmp_path):
    """A config with a segmentation dataset, and one segment definition of demo@Org/prod."""
    empty_table(tmp_path / "profiles/profiles_0", person=pa.struct([("name", pa.string())]))
    empty_table(tmp_path / "profiles/profiles_1", personalEmail=pa.struct([("address", pa.string())]))
    empty_table(tmp_path / "events/events_0", _id=pa.string(), timestamp=pa.timestamp("us", "UTC"))
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path, segmentation=str(tmp_path / "memberships")) + OTHER_TENANT)
    config = load_config(conf)
    definition = create_segment(SegmentStore(config.segment_table_path), config, {
        "name": "named", "expression": {"type": "PQL", "format": "pql/text", "value": 'person.name = "Ada"'},
        "schema": {"name": "_xdm.context.profile"}}, "demo@Org", "prod")
    return config, definition.id


# other@Org's and third@Org's own data (the same tables, declared as theirs).
OTHER_TENANT = """
[[profileDatasets]]
id = "other_profiles"
path = "profiles/profiles_0"
org = "other@Org"
sandboxes = ["prod"]

[[destinationDatasets]]
id = "other_audience"
path = "exports/other"
schemaName = "_xdm.context.profile"
org = "other@Org"
sandboxes = ["prod"]

[[profileDatasets]]
id = "third_profiles"
path = "profiles/profiles_1"
org = "third@Org"

[[destinationDatasets]]
id = "third_audience"
path = "exports/third"
schemaName = "_xdm.context.profile"
org = "third@Org"
"""


def evaluating_job(definition_id: str) -> dict:
    return dict(JOB, filter={"segments": [{"segmentId": definition_id}]}, evaluationInfo={"segmentation": True})


def test_a_schedule_whose_job_cannot_be_created_stops_no_other_schedule_and_no_new_job(evaluating):
    config, definition_id = evaluating
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    segments = SegmentStore(config.segment_table_path)
    broken = create_schedule(schedules, config, {"cron": "* * * * *", "job": evaluating_job(definition_id)},
                             "demo@Org", "prod")
    other_job = dict(JOB, destination={"datasetId": "other_audience"})
    other = create_schedule(schedules, config, {"cron": "* * * * *", "incremental": True, "job": other_job},
                            "other@Org", "prod")
    waiting = create_job(store, config, dict(JOB, destination={"datasetId": "third_audience"}), "third@Org",
                         "prod")
    assert segments.delete(definition_id, "demo@Org", "prod")  # as a race past delete_segment's check would

    for n in range(FAILURES_BEFORE_FAILED + 1):
        [created] = create_due_jobs(schedules, store, config, minute(n))
        assert created.schedule is not None and created.schedule.id == other.id
        claim(store, created.id, "runner", 60_000).finish(JobStatus.SUCCEEDED)
        shown = schedules.get(broken.id, "demo@Org", "prod").to_dict()
        assert shown["errorCount"] == min(n + 1, FAILURES_BEFORE_FAILED)
        assert shown["state"] == ("failed" if n + 1 >= FAILURES_BEFORE_FAILED else "active")
        assert f"no segment definition {definition_id!r}" in shown["lastError"]
        assert shown["lastJobId"] is None
    assert store.get(waiting.id).status is JobStatus.NEW  # run-pending goes on to run it


def test_a_job_created_again_clears_the_schedules_errors(config):
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    schedule = create_schedule(schedules, config, {"cron": "* * * * *", "job": JOB}, "demo@Org", "prod")
    assert len(create_due_jobs(schedules, store, config, minute(0))) == 1
    slot = ScheduleRef(id=schedule.id, slot=int(minute(1).timestamp() * 1000))
    shown = schedules.get(schedule.id, "demo@Org", "prod")
    assert schedules.claim_slot(shown, slot.slot, slot.slot)
    schedules.record_failure(slot, "demo@Org", "prod", "the destination is gone")
    assert schedules.get(schedule.id, "demo@Org", "prod").error_count == 1
    [second] = create_due_jobs(schedules, store, config, minute(2))
    shown = schedules.get(schedule.id, "demo@Org", "prod")
    assert (shown.error_count, shown.last_error, shown.state, shown.last_job_id) == (0, None, "active", second.id)


def test_a_definition_that_a_schedule_or_an_unfinished_job_evaluates_cannot_be_deleted(evaluating):
    config, definition_id = evaluating
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    segments = SegmentStore(config.segment_table_path)
    schedule = create_schedule(schedules, config, {"cron": "@daily", "job": evaluating_job(definition_id)},
                               "demo@Org", "prod")
    job = create_job(store, config, evaluating_job(definition_id), "demo@Org", "prod")

    def delete() -> None:
        delete_segment(segments, definition_id, "demo@Org", "prod",
                       evaluations_of(definition_id, schedules, store, "demo@Org", "prod"))

    with pytest.raises(SegmentConflict, match=f"schedule {schedule.id}, job {job.id}"):
        delete()
    schedules.delete(schedule.id, "demo@Org", "prod")
    with pytest.raises(SegmentConflict, match=f"used by job {job.id}:"):
        delete()
    cancel_job(store, job.id, "demo@Org", "prod")
    delete()
    with pytest.raises(SegmentNotFound):
        segments.get(definition_id, "demo@Org", "prod")


def test_a_schedule_table_of_an_older_version_gains_the_new_columns(config):
    newer = ("state", "errorCount", "lastError", "name", "type", "schedule", "activeSince")
    older = pa.schema([f for f in SCHEDULE_TABLE_SCHEMA if f.name not in newer])
    write_deltalake(config.schedule_table_path, pa.Table.from_pylist([{
        "id": "s1", "imsOrgId": "demo@Org", "sandboxName": "prod", "cron": "* * * * *", "incremental": False,
        "definition": json.dumps(JOB), "creationTime": 0}], schema=older))
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    found = schedules.get("s1", "demo@Org", "prod")
    assert (found.state, found.type, found.name, found.to_dict()["schedule"]) == ("active", "export", None, "* * * * *")
    assert found.to_dict()["properties"]["job"]["destination"] == {"datasetId": "audience", "segmentPerBatch": False}
    [record] = create_due_jobs(schedules, store, config, minute(0))
    assert schedules.get("s1", "demo@Org", "prod").last_job_id == record.id


def test_a_schedule_that_never_fires_costs_no_walk():
    started = time.perf_counter()
    for _ in range(100):
        assert latest_slot("0 0 31 2 *", T + timedelta(days=3650), EPOCH) is None
    assert latest_slot("0 0 13 * 5", T, EPOCH) == datetime(2026, 2, 13, tzinfo=UTC)  # a Friday the 13th
    assert time.perf_counter() - started < 5  # minute by minute, ten years took minutes per call
