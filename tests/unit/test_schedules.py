"""Schedules: cron slots, validation, one job per slot across schedulers (no Spark)."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime

import pytest

from jobs.model import RequestRejected
from jobs.schedules import ScheduleStore, create_due_jobs, create_schedule, latest_slot, parse_cron
from jobs.store import JobStore

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
    with pytest.raises(ValueError):
        parse_cron(cron)


def test_schedule_validation_names_the_field(config):
    schedules = ScheduleStore(config.schedule_table_path)
    with pytest.raises(RequestRejected) as caught:
        create_schedule(schedules, config, {"cron": "99 * * * *", "job": dict(JOB, fields="nope")}, "o", "s")
    assert {p.path for p in caught.value.problems} == {"cron"}
    with pytest.raises(RequestRejected) as caught:
        create_schedule(schedules, config, {"cron": "@hourly", "job": dict(JOB, fields="nope")}, "o", "s")
    assert [p.path for p in caught.value.problems] == ["job.fields"]
    with pytest.raises(RequestRejected) as caught:
        create_schedule(schedules, config, {"cron": "@hourly", "incremental": True,
                                            "job": dict(JOB, filter={"fromIngestTimestamp": "2024-01-01T00:00:00Z"})},
                        "o", "s")
    assert [p.path for p in caught.value.problems] == ["job.filter.fromIngestTimestamp"]
    assert schedules.list() == []


def _schedule_once(conf_path: str, queue) -> None:
    from jobs.config import load_config

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
    assert create_due_jobs(schedules, store, config, now=datetime.fromtimestamp(
        schedules.list()[0].last_slot / 1000, UTC)) == []
    assert schedules.delete(schedule.id, "demo@Org", "prod") and schedules.list() == []
