"""Schedules in AEP's shape: Quartz cron, `export` and `batch_segmentation` types, a state that a JSON
Patch pauses and resumes without replaying missed slots, and no gap for an incremental export (no Spark)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.control.jobs import JobStore
from jobs.control.leases import claim
from jobs.control.schedules import (
    ScheduleNotFound,
    ScheduleStore,
    advance_watermark,
    create_due_jobs,
    create_schedule,
    incremental_window,
    patch_schedule,
)
from jobs.control.segments import SegmentStore, create_segment
from jobs.spec.config import load_config
from jobs.spec.errors import RequestRejected
from jobs.spec.jobs import JobStatus
from jobs.spec.schedules import quartz_cron
from sample_lake import sample_config

ORG, SANDBOX = "demo@Org", "prod"
JOB = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
EVERY_MINUTE = "0 * * * * ?"


def minute(n: int, second: int = 0) -> datetime:
    """A time n minutes from now, at `second` past the minute (after any schedule made now)."""
    return (datetime.now(UTC) + timedelta(minutes=n + 1)).replace(second=second, microsecond=0)


def aep(type_: str = "export", properties: dict | None = None, schedule: str = EVERY_MINUTE, **more) -> dict:
    return {"name": "nightly", "type": type_, "properties": properties or {"job": JOB}, "schedule": schedule, **more}


@pytest.fixture
def segmenting(config, tmp_path):
    conf = tmp_path / "segmenting.toml"
    conf.write_text(sample_config(tmp_path, segmentation=str(tmp_path / "memberships")))
    return load_config(conf)


@pytest.mark.parametrize(("quartz", "cron"), [
    ("0 0 1 * * ?", "0 1 * * ?"),
    ("0 30 9 ? * 2-6", "30 9 ? * 1-5"),  # Quartz's Monday-Friday
    ("0 0 0 ? * MON,FRI *", "0 0 ? * MON,FRI"),
    ("0 0 0 ? * 6#3", "0 0 ? * 5#3"),  # the third Friday
    ("0 0/15 * * * ?", "0/15 * * * ?"),
    ("0 0 0 L * ?", "0 0 L * ?"),
])
def test_quartz_expressions_become_the_schedulers_cron(quartz, cron):
    assert quartz_cron(quartz) == cron


@pytest.mark.parametrize(("quartz", "said"), [
    ("0 1 * * *", "6 or 7 fields"),
    ("30 0 1 * * ?", "seconds"),
    ("0 0 1 * * ? 2027", "year"),
    ("0 0 1 * * *", "?"),
    ("0 0 0 ? * 8", "outside 1-7"),
    ("0 0 0 ? * 6L", "not support"),
])
def test_a_quartz_expression_the_scheduler_cannot_run_is_rejected_saying_why(quartz, said):
    with pytest.raises(ValueError, match=r".") as caught:
        quartz_cron(quartz)
    assert said in str(caught.value)


def test_an_aep_export_schedule_is_stored_and_answered_in_its_shape(config):
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    schedule = create_schedule(schedules, config, aep(properties={"job": JOB, "incremental": True}), ORG, SANDBOX)
    shown = schedules.get(schedule.id, ORG, SANDBOX).to_dict()
    assert (shown["name"], shown["type"], shown["schedule"], shown["state"]) == ("nightly", "export", EVERY_MINUTE,
                                                                                 "active")
    assert shown["properties"]["incremental"] is True and shown["cron"] == "* * * * ?"
    assert shown["properties"]["job"]["destination"]["datasetId"] == "audience"
    [job] = create_due_jobs(schedules, store, config, minute(0))
    assert job.schedule is not None and job.schedule.id == schedule.id


@pytest.mark.parametrize(("body", "path"), [
    (aep(schedule="0 1 * * *"), "schedule"),
    (aep(type_="report"), "type"),
    (aep(properties={"job": {**JOB, "fields": "nope.nothing"}}), "properties.job.fields"),
    (aep(properties={"incremental": True}), "properties.job"),
    (aep(type_="batch_segmentation", properties={"segments": []}), "properties.segments"),
    (aep(state="paused"), "state"),
])
def test_a_bad_aep_schedule_names_the_field(config, body, path):
    with pytest.raises(RequestRejected) as caught:
        create_schedule(ScheduleStore(config.schedule_table_path), config, body, ORG, SANDBOX)
    assert path in [p.path for p in caught.value.problems]


def test_a_batch_segmentation_schedule_creates_segment_jobs(segmenting):
    config = segmenting
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    segment = create_segment(SegmentStore(config.segment_table_path), config, {
        "name": "n", "schema": {"name": "_xdm.context.profile"},
        "expression": {"type": "PQL", "format": "pql/text", "value": 'person.name = "A"'}}, ORG, SANDBOX).id
    with pytest.raises(RequestRejected) as caught:
        create_schedule(schedules, config, aep("batch_segmentation", {"segments": [segment, "nope"]}), ORG, SANDBOX)
    assert [p.path for p in caught.value.problems] == ["properties.segments[1]"]
    schedule = create_schedule(schedules, config, aep("batch_segmentation", {"segments": ["*"]}), ORG, SANDBOX)
    assert schedule.to_dict()["properties"] == {"segments": ["*"]}
    [job] = create_due_jobs(schedules, store, config, minute(0))
    assert job.is_segment_job and [s.id for s in job.segment_definitions or ()] == [segment]


def test_a_paused_schedule_creates_no_job_and_resuming_replays_no_missed_slot(config):
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    schedule = create_schedule(schedules, config, aep(), ORG, SANDBOX)
    assert len(create_due_jobs(schedules, store, config, minute(0))) == 1
    pause = [{"op": "replace", "path": "/state", "value": "inactive"}]
    assert patch_schedule(schedules, schedule.id, pause, ORG, SANDBOX, minute(0, 30)).state == "inactive"
    assert [create_due_jobs(schedules, store, config, minute(n)) for n in (1, 2, 3)] == [[], [], []]

    resume = [{"op": "replace", "path": "/state", "value": "active"}]
    patch_schedule(schedules, schedule.id, resume, ORG, SANDBOX, minute(3, 30))
    assert create_due_jobs(schedules, store, config, minute(3, 45)) == []  # slot 3 came while paused
    [job] = create_due_jobs(schedules, store, config, minute(4))
    assert job.schedule is not None and job.schedule.slot == int(minute(4).timestamp() * 1000)

    hourly = [{"op": "replace", "path": "/schedule", "value": "0 0 * * * ?"}]
    changed = patch_schedule(schedules, schedule.id, hourly, ORG, SANDBOX, minute(4, 30))
    assert (changed.schedule, changed.cron) == ("0 0 * * * ?", "0 * * * ?")


def test_a_resumed_incremental_schedule_exports_from_where_it_stopped(config):
    schedules, store = ScheduleStore(config.schedule_table_path), JobStore(config.job_table_path)
    schedule = create_schedule(schedules, config, aep(properties={"job": JOB, "incremental": True}), ORG, SANDBOX)
    [first] = create_due_jobs(schedules, store, config, minute(0))
    claim(store, first.id, "runner", 60_000).finish(JobStatus.SUCCEEDED)
    advance_watermark(schedules, first, 1_700_000_000_000_000)
    patch_schedule(schedules, schedule.id, [{"op": "replace", "path": "/state", "value": "inactive"}], ORG, SANDBOX,
                   minute(0, 30))
    patch_schedule(schedules, schedule.id, [{"op": "replace", "path": "/state", "value": "active"}], ORG, SANDBOX,
                   minute(5, 30))
    [after] = create_due_jobs(schedules, store, config, minute(6))
    window = incremental_window(schedules, after).filter.from_ingest_timestamp
    assert window == datetime.fromtimestamp(1_700_000_000, UTC)  # the data of the paused slots is in it


@pytest.mark.parametrize(("patch", "path"), [
    ([{"op": "replace", "path": "/state", "value": "paused"}], "[0].value"),
    ([{"op": "replace", "path": "/schedule", "value": "0 1 * * *"}], "[0].value"),
    ([{"op": "remove", "path": "/state"}], "[0].op"),
    ([{"op": "replace", "path": "/name", "value": "x"}], "[0].path"),
    ([], "$"),
])
def test_a_bad_patch_names_the_operation(config, patch, path):
    schedules = ScheduleStore(config.schedule_table_path)
    schedule = create_schedule(schedules, config, aep(), ORG, SANDBOX)
    with pytest.raises(RequestRejected) as caught:
        patch_schedule(schedules, schedule.id, patch, ORG, SANDBOX)
    assert [p.path for p in caught.value.problems] == [path]
    with pytest.raises(ScheduleNotFound):
        patch_schedule(schedules, schedule.id, [{"op": "replace", "path": "/state", "value": "inactive"}], ORG, "dev")
