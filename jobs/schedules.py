"""Recurring exports: a cron expression and a job definition, stored in a Delta table.

`create_due_jobs` (called by run-pending and the runner loop) creates at most one
job per schedule slot, even with several schedulers: a scheduler first claims the
slot with a conditional update of the schedule's row, and only the winner creates
the job. The job's record names its schedule and slot (`schedule {id, slot}`);
nothing a client sends can set them.

An incremental schedule's jobs export only profiles whose merged `_ingestTime` is
after the watermark of its last successful run (the latest `_ingestTime` that run
read), so failed or late runs leave no gap and no overlap. It has at most one active
run: a slot that comes due while the previous slot's job is still NEW, PROCESSING or
CANCELLING is skipped (counted in `skippedSlots`), and the next run covers its data.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from jobs.clock import from_micros, now_ms
from jobs.config import Config
from jobs.definition_store import DefinitionStore
from jobs.model import (
    JobDefinition,
    JobRecord,
    Problem,
    RequestRejected,
    ScheduleRef,
    format_rfc3339,
    problems_from,
)
from jobs.plan import check_definition
from jobs.service import create_job
from jobs.store import JobNotFound, JobStore
from jobs.tables import DeltaRows, retry_commits, sql_text

log = logging.getLogger(__name__)

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("imsOrgId", pa.string()),
    ("sandboxName", pa.string()),
    ("cron", pa.string()),
    ("incremental", pa.bool_()),
    ("definition", pa.string()),
    ("creationTime", pa.int64()),
    ("lastSlot", pa.int64()),  # epoch ms of the last slot a job was created for
    ("lastJobId", pa.int64()),  # that slot's job; NULL between the claim and the job's creation
    ("claimTime", pa.int64()),  # epoch ms when lastSlot was claimed
    ("skippedSlots", pa.int64()),  # slots not run because the previous run was still active
    ("lastSkippedSlot", pa.int64()),  # epoch ms of the latest of them
    ("watermark", pa.int64()),  # epoch µs: latest _ingestTime read by the last successful run
])
# A claimed slot whose job is not recorded yet is being created by another scheduler for
# at most this long (a validation and one commit take well under a second); after it,
# that scheduler is taken to have died, and the slot's job to be lost.
CLAIM_GRACE_MS = 60_000

# ---------------------------------------------------------------- cron

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))
_ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *"}


def parse_cron(expression: str) -> list[set[int]]:
    """Five fields (minute hour day-of-month month day-of-week) with *, a-b, a,b and /step."""
    text = _ALIASES.get(expression.strip(), expression)
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(f"{expression!r} is not a cron expression of 5 fields, e.g. '0 * * * *'")
    sets = []
    for part, (name, low, high) in zip(parts, _FIELDS, strict=True):
        values: set[int] = set()
        for item in part.split(","):
            base, _, step_text = item.partition("/")
            try:
                step = int(step_text) if step_text else 1
                if base == "*":
                    start, end = low, high
                elif "-" in base:
                    start, end = (int(x) for x in base.split("-"))
                else:
                    start = int(base)
                    end = high if step_text else start
            except ValueError:
                raise ValueError(f"cron {name} {item!r} is not a number, range or step") from None
            if not (low <= start <= end <= high) or step < 1:
                raise ValueError(f"cron {name} {item!r} is outside {low}-{high}")
            values.update(range(start, end + 1, step))
        sets.append(values)
    return sets


def latest_slot(expression: str, now: datetime, earliest: datetime) -> datetime | None:
    """The latest minute ≤ now (and ≥ earliest) that the cron expression fires at, in UTC."""
    minutes, hours, days, months, weekdays = parse_cron(expression)
    slot = now.astimezone(UTC).replace(second=0, microsecond=0)
    while slot >= earliest:
        if (slot.month in months and slot.day in days and slot.hour in hours
                and slot.minute in minutes and (slot.weekday() + 1) % 7 in weekdays):
            return slot
        slot -= timedelta(minutes=1)
    return None


# ---------------------------------------------------------------- model


class ScheduleRequest(BaseModel):
    """The body of POST /config/schedules and `export-jobs schedule create`."""

    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel, frozen=True)

    cron: str = Field(min_length=1)
    incremental: bool = False
    job: dict[str, Any]

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        parse_cron(value)
        return value


class Schedule(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str
    ims_org_id: str
    sandbox_name: str
    cron: str
    incremental: bool
    job: dict[str, Any]
    creation_time: int
    last_slot: int | None = None
    last_job_id: int | None = None
    claim_time: int | None = Field(default=None, exclude=True)  # the scheduler's business, not a reader's
    skipped_slots: int = 0
    last_skipped_slot: int | None = None
    watermark: str | None = None  # RFC 3339, for people; the table keeps µs

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _watermark_text(micros: int | None) -> str | None:
    if micros is None:
        return None
    return format_rfc3339(from_micros(micros))


def _row_of(schedule_id: str, org: str, sandbox: str) -> str:
    """The predicate of one schedule's row, in its tenant."""
    return f"id = {sql_text(schedule_id)} AND imsOrgId = {sql_text(org)} AND sandboxName = {sql_text(sandbox)}"


def _unchanged(schedule: Schedule, slot_ms: int) -> str:
    """The schedule's row, still with the slots that `schedule` shows, and `slot_ms` neither run nor skipped:
    a conditional update on it succeeds only if no other scheduler acted since `schedule` was read."""
    last = "lastSlot IS NULL" if schedule.last_slot is None else f"lastSlot = {schedule.last_slot}"
    return (f"{_row_of(schedule.id, schedule.ims_org_id, schedule.sandbox_name)} AND {last}"
            f" AND (lastSkippedSlot IS NULL OR lastSkippedSlot < {slot_ms})")


class ScheduleStore(DeltaRows):
    NAME = "schedules"

    def add(self, schedule: Schedule) -> Schedule:
        row = {"id": schedule.id, "imsOrgId": schedule.ims_org_id, "sandboxName": schedule.sandbox_name,
               "cron": schedule.cron, "incremental": schedule.incremental,
               "definition": JobDefinition.model_validate(schedule.job).model_dump_json(by_alias=True,
                                                                                       exclude_none=True),
               "creationTime": schedule.creation_time}
        write_deltalake(self.path, pa.Table.from_pylist([row], schema=SCHEMA), mode="append")
        return schedule

    def list(self, org: str | None = None, sandbox: str | None = None) -> list[Schedule]:
        where = "1 = 1"
        if org is not None:
            where += f" AND imsOrgId = {sql_text(org)}"
        if sandbox is not None:
            where += f" AND sandboxName = {sql_text(sandbox)}"
        rows = self._query(f"SELECT * FROM schedules WHERE {where} ORDER BY creationTime, id")
        return [_schedule(r) for r in rows]

    def get(self, schedule_id: str, org: str, sandbox: str) -> Schedule | None:
        return next((s for s in self.list(org, sandbox) if s.id == schedule_id), None)

    def delete(self, schedule_id: str, org: str, sandbox: str) -> bool:
        table = self._table()
        if table is None:
            return False
        predicate = _row_of(schedule_id, org, sandbox)
        with self._lock:
            return retry_commits(lambda: table.delete(predicate)["num_deleted_rows"]) == 1

    def claim_slot(self, schedule: Schedule, slot_ms: int, at_ms: int) -> bool:
        """True for exactly one caller per (schedule, slot), and only while the schedule is as read."""
        updates = {"lastSlot": str(slot_ms), "lastJobId": "NULL", "claimTime": str(at_ms)}
        return self._update(updates, _unchanged(schedule, slot_ms)) == 1

    def record_job(self, schedule: ScheduleRef, org: str, sandbox: str, job_id: int) -> None:
        """Name the job created for the slot this scheduler claimed."""
        predicate = f"{_row_of(schedule.id, org, sandbox)} AND lastSlot = {schedule.slot} AND lastJobId IS NULL"
        self._update({"lastJobId": str(job_id)}, predicate)

    def skip_slot(self, schedule: Schedule, slot_ms: int) -> bool:
        """Count a slot that is not run; True for exactly one caller per (schedule, slot)."""
        updates = {"skippedSlots": "coalesce(skippedSlots, 0) + 1", "lastSkippedSlot": str(slot_ms)}
        return self._update(updates, _unchanged(schedule, slot_ms)) == 1

    def advance_watermark(self, schedule_id: str, org: str, sandbox: str, micros: int) -> None:
        predicate = f"{_row_of(schedule_id, org, sandbox)} AND (watermark IS NULL OR watermark < {micros})"
        self._update({"watermark": str(micros)}, predicate)


def _schedule(row: dict[str, Any]) -> Schedule:
    return Schedule(id=row["id"], ims_org_id=row["imsOrgId"], sandbox_name=row["sandboxName"], cron=row["cron"],
                    incremental=row["incremental"], job=json.loads(row["definition"]),
                    creation_time=row["creationTime"], last_slot=row["lastSlot"], last_job_id=row["lastJobId"],
                    claim_time=row["claimTime"], skipped_slots=row["skippedSlots"] or 0,
                    last_skipped_slot=row["lastSkippedSlot"], watermark=_watermark_text(row["watermark"]))


# ---------------------------------------------------------------- operations


def create_schedule(schedules: ScheduleStore, config: Config, body: dict[str, Any] | str | bytes,
                    org: str, sandbox: str) -> Schedule:
    """Validate a schedule (its job as a create request would be) and store it."""
    try:
        request = (ScheduleRequest.model_validate(body) if isinstance(body, dict)
                   else ScheduleRequest.model_validate_json(body))
    except ValidationError as err:
        raise RequestRejected(problems_from(err)) from None
    try:
        definition = JobDefinition.model_validate(request.job)
    except ValidationError as err:
        raise RequestRejected([Problem(path="job." + p.path, message=p.message) for p in problems_from(err)]) from None
    if request.incremental and definition.filter.from_ingest_timestamp is not None:
        raise RequestRejected([Problem(path="job.filter.fromIngestTimestamp",
                                       message="an incremental schedule sets it on each run; leave it out")])
    definitions = (DefinitionStore(config.segment_table_path).all(org, sandbox)
                   if definition.evaluation_info.segmentation else None)
    try:
        check_definition(definition, config, definitions)
    except RequestRejected as err:
        raise RequestRejected([Problem(path="job." + p.path, message=p.message) for p in err.problems]) from None
    schedule = Schedule(id=uuid.uuid4().hex, ims_org_id=org, sandbox_name=sandbox, cron=request.cron,
                        incremental=request.incremental,
                        job=definition.model_dump(mode="json", by_alias=True, exclude_none=True),
                        creation_time=now_ms())
    return schedules.add(schedule)


def previous_run_active(schedule: Schedule, store: JobStore, at_ms: int) -> bool:
    """Whether the job of the schedule's last slot may still run: NEW, PROCESSING or CANCELLING,
    or claimed so recently that another scheduler may still be creating it."""
    if schedule.last_slot is None:
        return False
    if schedule.last_job_id is None:
        return at_ms - (schedule.claim_time or 0) < CLAIM_GRACE_MS
    try:
        job = store.get(schedule.last_job_id, schedule.ims_org_id, schedule.sandbox_name)
    except JobNotFound:
        return False
    return not job.status.finished


def create_due_jobs(schedules: ScheduleStore, store: JobStore, config: Config,
                    now: datetime | None = None) -> list[JobRecord]:
    """One NEW job per schedule whose latest slot has no job yet (for an incremental schedule,
    only once its previous run has finished; else the slot is skipped)."""
    now = now or datetime.now(UTC)
    at_ms = int(now.timestamp() * 1000)
    created = []
    for schedule in schedules.list():
        earliest = datetime.fromtimestamp(schedule.creation_time / 1000, UTC).replace(second=0, microsecond=0)
        slot = latest_slot(schedule.cron, now, earliest)
        if slot is None:
            continue
        slot_ms = int(slot.timestamp() * 1000)
        if max(schedule.last_slot or 0, schedule.last_skipped_slot or 0) >= slot_ms:
            continue
        if schedule.incremental and previous_run_active(schedule, store, at_ms):
            if schedules.skip_slot(schedule, slot_ms):
                log.info("schedule %s: slot %s skipped, its previous run is still active", schedule.id, slot)
            continue
        if not schedules.claim_slot(schedule, slot_ms, at_ms):
            continue
        ref = ScheduleRef(id=schedule.id, slot=slot_ms)
        record = create_job(store, config, schedule.job, schedule.ims_org_id, schedule.sandbox_name,
                            request_id=f"schedule-{schedule.id}-{slot_ms}", schedule=ref)
        schedules.record_job(ref, schedule.ims_org_id, schedule.sandbox_name, record.id)
        created.append(record)
    return created


def _incremental_schedule(schedules: ScheduleStore, record: JobRecord) -> Schedule | None:
    """The incremental schedule that created the job, looked up in the job's own org and sandbox."""
    if record.schedule is None:
        return None
    schedule = schedules.get(record.schedule.id, record.ims_org_id, record.sandbox_name)
    return schedule if schedule is not None and schedule.incremental else None


def incremental_window(schedules: ScheduleStore, record: JobRecord) -> dict[str, Any]:
    """The record changes that start a run: for a job of an incremental schedule that has run
    before, its filter from the last successful run's watermark; nothing for any other job."""
    schedule = _incremental_schedule(schedules, record)
    if schedule is None or schedule.watermark is None:
        return {}
    return {"filter": {**record.filter, "fromIngestTimestamp": schedule.watermark}}


def advance_watermark(schedules: ScheduleStore, record: JobRecord, micros: int) -> None:
    """After a job of an incremental schedule committed: the next run starts after what it read."""
    schedule = _incremental_schedule(schedules, record)
    if schedule is not None:
        schedules.advance_watermark(schedule.id, record.ims_org_id, record.sandbox_name, micros)
