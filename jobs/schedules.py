"""Recurring exports: a cron expression and a job definition, stored in a Delta table.

`create_due_jobs` (called by run-pending and the runner loop) creates at most one
job per schedule slot, even with several schedulers: a scheduler first claims the
slot with a conditional update of the schedule's `lastSlot`, and only the winner
creates the job. An incremental schedule's jobs export only profiles whose merged
`_ingestTime` is after the watermark of its last successful run (the latest
`_ingestTime` that run read), so failed or late runs leave no gap and no overlap.
"""

from __future__ import annotations

import json
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
from jobs.model import JobDefinition, JobRecord, Problem, RequestRejected, format_rfc3339, problems_from
from jobs.plan import check_definition
from jobs.service import create_job
from jobs.store import JobStore
from jobs.tables import DeltaRows, retry_commits, sql_text

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("imsOrgId", pa.string()),
    ("sandboxName", pa.string()),
    ("cron", pa.string()),
    ("incremental", pa.bool_()),
    ("definition", pa.string()),
    ("creationTime", pa.int64()),
    ("lastSlot", pa.int64()),  # epoch ms of the last slot a job was created for
    ("watermark", pa.int64()),  # epoch µs: latest _ingestTime read by the last successful run
])

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
    watermark: str | None = None  # RFC 3339, for people; the table keeps µs

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _watermark_text(micros: int | None) -> str | None:
    if micros is None:
        return None
    return format_rfc3339(from_micros(micros))


class ScheduleStore(DeltaRows):
    NAME = "schedules"

    def add(self, schedule: Schedule) -> Schedule:
        row = {"id": schedule.id, "imsOrgId": schedule.ims_org_id, "sandboxName": schedule.sandbox_name,
               "cron": schedule.cron, "incremental": schedule.incremental,
               "definition": JobDefinition.model_validate(schedule.job).model_dump_json(by_alias=True,
                                                                                       exclude_none=True),
               "creationTime": schedule.creation_time, "lastSlot": None, "watermark": None}
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
        predicate = f"id = {sql_text(schedule_id)} AND imsOrgId = {sql_text(org)} AND sandboxName = {sql_text(sandbox)}"
        with self._lock:
            return retry_commits(lambda: table.delete(predicate)["num_deleted_rows"]) == 1

    def claim_slot(self, schedule_id: str, slot_ms: int) -> bool:
        """True for exactly one caller per (schedule, slot)."""
        predicate = f"id = {sql_text(schedule_id)} AND (lastSlot IS NULL OR lastSlot < {slot_ms})"
        return self._update({"lastSlot": str(slot_ms)}, predicate) == 1

    def watermark(self, schedule_id: str) -> int | None:
        rows = self._query(f"SELECT watermark FROM schedules WHERE id = {sql_text(schedule_id)}")
        return rows[0]["watermark"] if rows else None

    def advance_watermark(self, schedule_id: str, micros: int) -> None:
        predicate = f"id = {sql_text(schedule_id)} AND (watermark IS NULL OR watermark < {micros})"
        self._update({"watermark": str(micros)}, predicate)


def _schedule(row: dict[str, Any]) -> Schedule:
    return Schedule(id=row["id"], ims_org_id=row["imsOrgId"], sandbox_name=row["sandboxName"], cron=row["cron"],
                    incremental=row["incremental"], job=json.loads(row["definition"]),
                    creation_time=row["creationTime"], last_slot=row["lastSlot"],
                    watermark=_watermark_text(row["watermark"]))


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


def create_due_jobs(schedules: ScheduleStore, store: JobStore, config: Config,
                    now: datetime | None = None) -> list[JobRecord]:
    """One NEW job per schedule whose latest slot has no job yet."""
    now = now or datetime.now(UTC)
    created = []
    for schedule in schedules.list():
        earliest = datetime.fromtimestamp(schedule.creation_time / 1000, UTC).replace(second=0, microsecond=0)
        slot = latest_slot(schedule.cron, now, earliest)
        if slot is None:
            continue
        slot_ms = int(slot.timestamp() * 1000)
        if (schedule.last_slot or 0) >= slot_ms or not schedules.claim_slot(schedule.id, slot_ms):
            continue
        record = create_job(store, config, schedule.job, schedule.ims_org_id, schedule.sandbox_name,
                            request_id=f"schedule-{schedule.id}-{slot_ms}")
        created.append(record)
    return created


def schedule_of(record: JobRecord) -> str | None:
    prefix = "schedule-"
    if not record.request_id.startswith(prefix):
        return None
    return record.request_id[len(prefix):].rsplit("-", 1)[0]


def incremental_from(schedules: ScheduleStore, record: JobRecord) -> int | None | bool:
    """For a job of an incremental schedule: the watermark (µs, None for a first run); else False."""
    schedule_id = schedule_of(record)
    if schedule_id is None:
        return False
    match = next((s for s in schedules.list() if s.id == schedule_id), None)
    if match is None or not match.incremental:
        return False
    return schedules.watermark(schedule_id)

