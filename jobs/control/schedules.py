"""Recurring exports: the schedule table, and the scheduler that creates their jobs (docs/reference/schedules.md).

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

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake

from jobs.control.jobs import JobNotFound, JobStore, create_job
from jobs.control.segments import SegmentStore
from jobs.control.tables import DeltaRows, all_of, any_of, below, equal, literal, retry_commits, tenant
from jobs.planner import check_job
from jobs.spec import (
    Config,
    JobDefinition,
    JobRecord,
    NotFound,
    RequestRejected,
    Schedule,
    ScheduleRef,
    ScheduleRequest,
    format_rfc3339,
    from_micros,
    latest_slot,
    now_ms,
    parse_rfc3339,
)

log = logging.getLogger(__name__)

SCHEDULE_TABLE_SCHEMA = pa.schema([
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

def _watermark_text(micros: int | None) -> str | None:
    if micros is None:
        return None
    return format_rfc3339(from_micros(micros))


class ScheduleNotFound(NotFound):
    pass


def _row_of(schedule_id: str, org: str, sandbox: str) -> str:
    """The predicate of one schedule's row, in its tenant."""
    return all_of(equal("id", schedule_id), tenant(org, sandbox))


def _unchanged(schedule: Schedule, slot_ms: int) -> str:
    """The schedule's row, still with the slots that `schedule` shows, and `slot_ms` neither run nor skipped:
    a conditional update on it succeeds only if no other scheduler acted since `schedule` was read."""
    return all_of(_row_of(schedule.id, schedule.ims_org_id, schedule.sandbox_name),
                  equal("lastSlot", schedule.last_slot),
                  any_of(equal("lastSkippedSlot", None), below("lastSkippedSlot", slot_ms)))


class ScheduleStore(DeltaRows):
    NAME = "schedules"

    def add(self, schedule: Schedule) -> Schedule:
        row = {"id": schedule.id, "imsOrgId": schedule.ims_org_id, "sandboxName": schedule.sandbox_name,
               "cron": schedule.cron, "incremental": schedule.incremental,
               "definition": schedule.job.model_dump_json(by_alias=True, exclude_none=True),
               "creationTime": schedule.creation_time}
        write_deltalake(self.path, pa.Table.from_pylist([row], schema=SCHEDULE_TABLE_SCHEMA), mode="append")
        return schedule

    def list(self, org: str | None = None, sandbox: str | None = None) -> list[Schedule]:
        rows = self._query(f"SELECT * FROM schedules WHERE {tenant(org, sandbox)} ORDER BY creationTime, id")
        return [_schedule(r) for r in rows]

    def find(self, schedule_id: str, org: str, sandbox: str) -> Schedule | None:
        rows = self._query(f"SELECT * FROM schedules WHERE {_row_of(schedule_id, org, sandbox)}")
        return _schedule(rows[0]) if rows else None

    def get(self, schedule_id: str, org: str, sandbox: str) -> Schedule:
        found = self.find(schedule_id, org, sandbox)
        if found is None:
            raise ScheduleNotFound(f"no schedule {schedule_id}")
        return found

    def delete(self, schedule_id: str, org: str, sandbox: str) -> None:
        """Delete a schedule (its jobs stay); raises ScheduleNotFound."""
        table = self._table()
        predicate = _row_of(schedule_id, org, sandbox)
        with self._lock:
            deleted = 0 if table is None else retry_commits(lambda: table.delete(predicate)["num_deleted_rows"])
        if deleted != 1:
            raise ScheduleNotFound(f"no schedule {schedule_id}")

    def claim_slot(self, schedule: Schedule, slot_ms: int, at_ms: int) -> bool:
        """True for exactly one caller per (schedule, slot), and only while the schedule is as read."""
        updates = {"lastSlot": literal(slot_ms), "lastJobId": literal(None), "claimTime": literal(at_ms)}
        return self._update(updates, _unchanged(schedule, slot_ms)) == 1

    def record_job(self, schedule: ScheduleRef, org: str, sandbox: str, job_id: int) -> None:
        """Name the job created for the slot this scheduler claimed."""
        predicate = all_of(_row_of(schedule.id, org, sandbox), equal("lastSlot", schedule.slot),
                           equal("lastJobId", None))
        self._update({"lastJobId": literal(job_id)}, predicate)

    def skip_slot(self, schedule: Schedule, slot_ms: int) -> bool:
        """Count a slot that is not run; True for exactly one caller per (schedule, slot)."""
        updates = {"skippedSlots": "coalesce(skippedSlots, 0) + 1", "lastSkippedSlot": literal(slot_ms)}
        return self._update(updates, _unchanged(schedule, slot_ms)) == 1

    def advance_watermark(self, schedule_id: str, org: str, sandbox: str, micros: int) -> None:
        predicate = all_of(_row_of(schedule_id, org, sandbox),
                           any_of(equal("watermark", None), below("watermark", micros)))
        self._update({"watermark": literal(micros)}, predicate)


def _schedule(row: dict[str, Any]) -> Schedule:
    return Schedule(id=row["id"], ims_org_id=row["imsOrgId"], sandbox_name=row["sandboxName"], cron=row["cron"],
                    incremental=row["incremental"], job=JobDefinition.model_validate_json(row["definition"]),
                    creation_time=row["creationTime"], last_slot=row["lastSlot"], last_job_id=row["lastJobId"],
                    claim_time=row["claimTime"], skipped_slots=row["skippedSlots"] or 0,
                    last_skipped_slot=row["lastSkippedSlot"], watermark=_watermark_text(row["watermark"]))


# ---------------------------------------------------------------- operations


def create_schedule(schedules: ScheduleStore, config: Config, body: dict[str, Any] | str | bytes,
                    org: str, sandbox: str) -> Schedule:
    """Validate a schedule (its job as a create request would be) and store it."""
    request = ScheduleRequest.parse(body)
    try:
        definition = JobDefinition.parse(request.job)
    except RequestRejected as err:
        raise err.under("job") from None
    if request.incremental and definition.filter.from_ingest_timestamp is not None:
        raise RequestRejected.at("job.filter.fromIngestTimestamp",
                                 "an incremental schedule sets it on each run; leave it out")
    definitions = (SegmentStore(config.segment_table_path).all(org, sandbox)
                   if definition.evaluation_info.segmentation else None)
    try:
        check_job(definition, config, definitions)
    except RequestRejected as err:
        raise err.under("job") from None
    schedule = Schedule(id=uuid.uuid4().hex, ims_org_id=org, sandbox_name=sandbox, cron=request.cron,
                        incremental=request.incremental,
                        job=definition,
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
        record = create_job(store, config, schedule.job.model_dump(mode="json", by_alias=True, exclude_none=True),
                            schedule.ims_org_id, schedule.sandbox_name,
                            request_id=f"schedule-{schedule.id}-{slot_ms}", schedule=ref)
        schedules.record_job(ref, schedule.ims_org_id, schedule.sandbox_name, record.id)
        created.append(record)
    return created


def _incremental_schedule(schedules: ScheduleStore, record: JobRecord) -> Schedule | None:
    """The incremental schedule that created the job, looked up in the job's own org and sandbox."""
    if record.schedule is None:
        return None
    schedule = schedules.find(record.schedule.id, record.ims_org_id, record.sandbox_name)
    return schedule if schedule is not None and schedule.incremental else None


def incremental_window(schedules: ScheduleStore, record: JobRecord) -> JobRecord:
    """The record a run starts from: for a job of an incremental schedule that has run before,
    its filter from the last successful run's watermark; any other job's record as it is."""
    schedule = _incremental_schedule(schedules, record)
    if schedule is None or schedule.watermark is None:
        return record
    return record.exporting_from(parse_rfc3339(schedule.watermark))


def advance_watermark(schedules: ScheduleStore, record: JobRecord, micros: int) -> None:
    """After a job of an incremental schedule committed: the next run starts after what it read."""
    schedule = _incremental_schedule(schedules, record)
    if schedule is not None:
        schedules.advance_watermark(schedule.id, record.ims_org_id, record.sandbox_name, micros)
