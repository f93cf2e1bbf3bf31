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

import builtins
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake

from jobs.control.jobs import JobNotFound, JobStore, create_job
from jobs.control.pages import SCHEDULE_CURSOR, cursor_page
from jobs.control.segment_jobs import create_segment_job
from jobs.control.segments import SegmentStore
from jobs.control.tables import (
    DeltaRows,
    all_of,
    any_of,
    before,
    below,
    equal,
    literal,
    retry_commits,
    tenant,
)
from jobs.control.webhooks import record_events
from jobs.planner import check_job
from jobs.spec import (
    SCHEDULE_ACTIVE,
    SCHEDULE_FAILED,
    SCHEDULE_INACTIVE,
    AepScheduleRequest,
    Config,
    ExportJobsError,
    ExportProperties,
    JobDefinition,
    JobRecord,
    NotFound,
    Problem,
    RequestRejected,
    Schedule,
    ScheduleRef,
    ScheduleRequest,
    SegmentationProperties,
    format_rfc3339,
    from_micros,
    json_object,
    json_value,
    latest_slot,
    next_slots,
    now_ms,
    parse_rfc3339,
    quartz_cron,
    slot_skipped_event,
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
    ("state", pa.string()),  # "failed" once its job could not be created FAILURES_BEFORE_FAILED times in a row
    ("errorCount", pa.int64()),  # slots in a row whose job could not be created
    ("lastError", pa.string()),  # why the latest of them could not
    # AEP's shape (null in rows made before it: an export schedule with a 5-field `cron`):
    ("name", pa.string()),
    ("type", pa.string()),  # "export" or "batch_segmentation"
    ("schedule", pa.string()),  # the Quartz expression as given; `cron` holds what the scheduler runs
    ("activeSince", pa.int64()),  # epoch ms: slots before it are never run (the latest resume or new schedule)
])
# A schedule whose job cannot be created this many slots in a row (a definition it evaluates was
# deleted, the config no longer has its destination, ...) stops being run: its state becomes "failed".
FAILURES_BEFORE_FAILED = 3
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
    SCHEMA = SCHEDULE_TABLE_SCHEMA

    def add(self, schedule: Schedule) -> Schedule:
        definition = (schedule.job.model_dump_json(by_alias=True, exclude_none=True) if schedule.job is not None
                      else json.dumps({"segments": schedule.segments}))
        row = {"id": schedule.id, "imsOrgId": schedule.ims_org_id, "sandboxName": schedule.sandbox_name,
               "cron": schedule.cron, "incremental": schedule.incremental, "definition": definition,
               "creationTime": schedule.creation_time, "state": schedule.state, "errorCount": 0,
               "name": schedule.name, "type": schedule.type, "schedule": schedule.schedule,
               "activeSince": schedule.active_since}
        write_deltalake(self.path, pa.Table.from_pylist([row], schema=SCHEDULE_TABLE_SCHEMA), mode="append")
        return schedule

    def list(self, org: str | None = None, sandbox: str | None = None) -> list[Schedule]:
        rows = self._query(f"SELECT * FROM schedules WHERE {tenant(org, sandbox)} ORDER BY creationTime, id")
        return [_schedule(r) for r in rows]

    def metric_rows(self) -> builtins.list[dict[str, Any]]:
        """Schedules by tenant, type and state (GET /metrics); rows made before types and states read as
        _schedule reads them."""
        kind, state = "coalesce(type, 'export')", f"coalesce(state, {literal(SCHEDULE_ACTIVE)})"
        return self._query(f"SELECT imsOrgId, sandboxName, {kind} AS type, {state} AS state, count(*) AS schedules "
                           f"FROM schedules GROUP BY imsOrgId, sandboxName, {kind}, {state}")

    def page(self, org: str, sandbox: str, limit: int, after: tuple[int, str] | None = None
             ) -> builtins.list[Schedule]:
        """Newest first; `after` is the (creationTime, id) of the last schedule already seen."""
        where = all_of(tenant(org, sandbox), before(*after) if after else None)
        rows = self._query(f"SELECT * FROM schedules WHERE {where} ORDER BY creationTime DESC, id DESC "
                           f"LIMIT {int(limit)}")
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

    def change(self, schedule_id: str, org: str, sandbox: str, state: str | None, quartz: str | None,
               at_ms: int) -> None:
        """Pause or resume a schedule, or give it a new Quartz expression; either way no slot before
        `at_ms` is run afterwards (a resumed schedule does not replay the slots it missed)."""
        updates = {"activeSince": literal(at_ms)}
        if state is not None:
            updates["state"] = literal(state)
            if state == SCHEDULE_ACTIVE:  # a failed schedule resumed starts counting its errors again
                updates.update(errorCount=literal(0), lastError=literal(None))
        if quartz is not None:
            updates.update(schedule=literal(quartz), cron=literal(quartz_cron(quartz)))
        if self._update(updates, _row_of(schedule_id, org, sandbox)) != 1:
            raise ScheduleNotFound(f"no schedule {schedule_id}")

    def claim_slot(self, schedule: Schedule, slot_ms: int, at_ms: int) -> bool:
        """True for exactly one caller per (schedule, slot), and only while the schedule is as read."""
        updates = {"lastSlot": literal(slot_ms), "lastJobId": literal(None), "claimTime": literal(at_ms)}
        return self._update(updates, _unchanged(schedule, slot_ms)) == 1

    def record_job(self, schedule: ScheduleRef, org: str, sandbox: str, job_id: int) -> None:
        """Name the job created for the slot this scheduler claimed; the schedule's errors are over."""
        self._update({"lastJobId": literal(job_id), "errorCount": literal(0), "lastError": literal(None)},
                     _claimed(schedule, org, sandbox))

    def record_failure(self, schedule: ScheduleRef, org: str, sandbox: str, error: str) -> None:
        """The slot this scheduler claimed gets no job: count it, and after FAILURES_BEFORE_FAILED in a
        row stop the schedule. The claim is released, so an incremental schedule's next slot runs."""
        count = "coalesce(errorCount, 0) + 1"
        failed = f"CASE WHEN {count} >= {FAILURES_BEFORE_FAILED} THEN {literal(SCHEDULE_FAILED)} ELSE state END"
        self._update({"errorCount": count, "lastError": literal(error), "state": failed,
                      "claimTime": literal(None)}, _claimed(schedule, org, sandbox))

    def skip_slot(self, schedule: Schedule, slot_ms: int) -> bool:
        """Count a slot that is not run; True for exactly one caller per (schedule, slot)."""
        updates = {"skippedSlots": "coalesce(skippedSlots, 0) + 1", "lastSkippedSlot": literal(slot_ms)}
        return self._update(updates, _unchanged(schedule, slot_ms)) == 1

    def advance_watermark(self, schedule_id: str, org: str, sandbox: str, micros: int) -> None:
        predicate = all_of(_row_of(schedule_id, org, sandbox),
                           any_of(equal("watermark", None), below("watermark", micros)))
        self._update({"watermark": literal(micros)}, predicate)


def _claimed(schedule: ScheduleRef, org: str, sandbox: str) -> str:
    """The schedule's row while its slot is claimed and has no job yet."""
    return all_of(_row_of(schedule.id, org, sandbox), equal("lastSlot", schedule.slot), equal("lastJobId", None))


def _schedule(row: dict[str, Any]) -> Schedule:
    segmenting = row["type"] == "batch_segmentation"
    return Schedule(id=row["id"], ims_org_id=row["imsOrgId"], sandbox_name=row["sandboxName"], cron=row["cron"],
                    incremental=row["incremental"],
                    job=None if segmenting else JobDefinition.model_validate_json(row["definition"]),
                    segments=json.loads(row["definition"])["segments"] if segmenting else None,
                    name=row["name"], type=row["type"] or "export", schedule=row["schedule"],
                    active_since=row["activeSince"],
                    creation_time=row["creationTime"], last_slot=row["lastSlot"], last_job_id=row["lastJobId"],
                    claim_time=row["claimTime"], skipped_slots=row["skippedSlots"] or 0,
                    last_skipped_slot=row["lastSkippedSlot"], watermark=_watermark_text(row["watermark"]),
                    state=row["state"] or SCHEDULE_ACTIVE, error_count=row["errorCount"] or 0,
                    last_error=row["lastError"])


# ---------------------------------------------------------------- operations


def create_schedule(schedules: ScheduleStore, config: Config, body: dict[str, Any] | str | bytes,
                    org: str, sandbox: str) -> Schedule:
    """Validate a schedule, in AEP's shape or the earlier `{cron, incremental, job}`, and store it. Its
    job (or segment job) is checked as a create request would be."""
    value = body if isinstance(body, dict) else json_object(body)
    existing = len(schedules.list(org, sandbox))
    if existing >= config.limits.schedules_per_tenant:
        raise RequestRejected.at("$", f"this org and sandbox have {existing} schedules, the most "
                                      "limits.schedulesPerTenant allows: delete some first")
    created = now_ms()
    if "cron" in value:  # the earlier shape
        request = ScheduleRequest.parse(value)
        checked = _checked_job(config, request.job, request.incremental, org, sandbox, "job")
        return schedules.add(Schedule(id=uuid.uuid4().hex, ims_org_id=org, sandbox_name=sandbox, cron=request.cron,
                                      incremental=request.incremental, job=checked, creation_time=created))
    aep = AepScheduleRequest.parse(value)
    job: JobDefinition | None = None
    segments: list[str] | None = None
    incremental = False
    if aep.type == "export":
        try:
            properties = ExportProperties.parse(aep.properties)
        except RequestRejected as err:
            raise err.under("properties") from None
        incremental = properties.incremental
        job = _checked_job(config, properties.job, incremental, org, sandbox, "properties.job")
    else:
        try:
            segments = SegmentationProperties.parse(aep.properties).segments
        except RequestRejected as err:
            raise err.under("properties") from None
        listed = segments if segments == ["*"] else [{"segmentId": s} for s in segments]
        try:
            create_segment_job(JobStore(config.job_table_path), config, listed, org, sandbox, dry_run=True)
        except RequestRejected as err:  # its paths are the segment job request's: "$", "[1].segmentId"
            raise RequestRejected([Problem(path="properties.segments" + ("" if p.path == "$" else p.path.split(".")[0]),
                                           message=p.message) for p in err.problems]) from None
    schedule = Schedule(id=uuid.uuid4().hex, ims_org_id=org, sandbox_name=sandbox, cron=quartz_cron(aep.schedule),
                        incremental=incremental, job=job, segments=segments, name=aep.name, type=aep.type,
                        schedule=aep.schedule, state=aep.state, creation_time=created)
    return schedules.add(schedule)


def _checked_job(config: Config, body: dict[str, Any], incremental: bool, org: str, sandbox: str,
                 at: str) -> JobDefinition:
    """A schedule's export job, checked as a create request would be; its problems under `at`."""
    try:
        definition = JobDefinition.parse(body)
    except RequestRejected as err:
        raise err.under(at) from None
    if incremental and definition.filter.from_ingest_timestamp is not None:
        raise RequestRejected.at(f"{at}.filter.fromIngestTimestamp",
                                 "an incremental schedule sets it on each run; leave it out")
    definitions = SegmentStore(config.segment_table_path).all(org, sandbox) if definition.filter.segments else None
    try:
        check_job(definition, config.for_tenant(org, sandbox), definitions)
    except RequestRejected as err:
        raise err.under(at) from None
    return definition


def patch_schedule(schedules: ScheduleStore, schedule_id: str, body: list[Any] | str | bytes, org: str,
                   sandbox: str, now: datetime | None = None) -> Schedule:
    """PATCH /config/schedules/{id}: a JSON Patch replacing `/state` ("active" or "inactive") and/or
    `/schedule` (a Quartz expression). Pausing stops new runs; resuming, or a new expression, runs the
    slots from then on only."""
    operations = body if isinstance(body, list) else json_value(body)
    if not isinstance(operations, list) or not operations:
        raise RequestRejected.at("$", 'send a JSON Patch: [{"op": "replace", "path": "/state", "value": "inactive"}]')
    schedules.get(schedule_id, org, sandbox)  # another tenant's schedule is not found
    state = quartz = None
    problems = []
    for i, operation in enumerate(operations):
        if not isinstance(operation, dict) or operation.get("op") not in ("replace", "add"):
            problems.append(Problem(path=f"[{i}].op", message='each operation is {"op": "replace", "path", "value"}'))
            continue
        path, value = operation.get("path"), operation.get("value")
        if path == "/state" and value in (SCHEDULE_ACTIVE, SCHEDULE_INACTIVE):
            state = value
        elif path == "/state":
            problems.append(Problem(path=f"[{i}].value", message=f"{value!r} is not a state: active or inactive"))
        elif path == "/schedule" and isinstance(value, str):
            try:
                quartz_cron(value)
                quartz = value
            except ValueError as err:
                problems.append(Problem(path=f"[{i}].value", message=str(err)))
        else:
            problems.append(Problem(path=f"[{i}].path", message=f"{path!r} cannot be changed: /state or /schedule"))
    if problems:
        raise RequestRejected(problems)
    at_ms = int(now.timestamp() * 1000) if now is not None else now_ms()
    schedules.change(schedule_id, org, sandbox, state, quartz, at_ms)
    return schedules.get(schedule_id, org, sandbox)


def previous_run_active(schedule: Schedule, store: JobStore, at_ms: int) -> bool:
    """Whether the job of the schedule's last slot may still run: NEW, PROCESSING or CANCELLING,
    or claimed so recently that another scheduler may still be creating it."""
    if schedule.last_slot is None:
        return False
    if schedule.last_job_id is None:  # being created, or its creation failed (claim released)
        return schedule.claim_time is not None and at_ms - schedule.claim_time < CLAIM_GRACE_MS
    try:
        job = store.get(schedule.last_job_id, schedule.ims_org_id, schedule.sandbox_name)
    except JobNotFound:
        return False
    return not job.status.finished


def create_due_jobs(schedules: ScheduleStore, store: JobStore, config: Config,
                    now: datetime | None = None) -> list[JobRecord]:
    """One NEW job per schedule whose latest slot has no job yet (for an incremental schedule,
    only once its previous run has finished; else the slot is skipped). A schedule whose job
    cannot be created is marked, never stops the others (`_due_job`)."""
    now = now or datetime.now(UTC)
    created = []
    for schedule in schedules.list():
        if schedule.state != SCHEDULE_ACTIVE:  # paused, or failed
            continue
        try:
            record = _due_job(schedules, store, config, schedule, now)
        except Exception:  # e.g. a table unreachable: this schedule waits for the next poll, the others go on
            log.exception("schedule %s: its due job could not be created", schedule.id)
            continue
        if record is not None:
            created.append(record)
    return created


def _due_job(schedules: ScheduleStore, store: JobStore, config: Config, schedule: Schedule,
             now: datetime) -> JobRecord | None:
    """The job of the schedule's latest slot, if it is due and this scheduler claims it."""
    at_ms = int(now.timestamp() * 1000)
    # From the minute the schedule was made; after a resume or a new expression, from that instant: a slot
    # that came while it was paused is missed, not replayed.
    earliest = max(datetime.fromtimestamp(schedule.creation_time / 1000, UTC).replace(second=0, microsecond=0),
                   datetime.fromtimestamp((schedule.active_since or 0) / 1000, UTC))
    slot = latest_slot(schedule.cron, now, earliest)
    if slot is None:
        return None
    slot_ms = int(slot.timestamp() * 1000)
    if max(schedule.last_slot or 0, schedule.last_skipped_slot or 0) >= slot_ms:
        return None
    if schedule.incremental and previous_run_active(schedule, store, at_ms):
        if schedules.skip_slot(schedule, slot_ms):
            log.info("schedule %s: slot %s skipped, its previous run is still active", schedule.id, slot)
            record_events(config, [slot_skipped_event(config.deployment, schedule.id, schedule.ims_org_id,
                                                      schedule.sandbox_name, slot_ms, schedule.skipped_slots + 1,
                                                      at_ms)])
        return None
    if not schedules.claim_slot(schedule, slot_ms, at_ms):
        return None
    ref = ScheduleRef(id=schedule.id, slot=slot_ms)
    org, sandbox = schedule.ims_org_id, schedule.sandbox_name
    request_id = f"schedule-{schedule.id}-{slot_ms}"
    try:
        if schedule.job is None:
            segments = schedule.segments or []
            listed = segments if segments == ["*"] else [{"segmentId": s} for s in segments]
            record = create_segment_job(store, config, listed, org, sandbox, request_id, schedule=ref)
        else:
            record = create_job(store, config, schedule.job.model_dump(mode="json", by_alias=True, exclude_none=True),
                                org, sandbox, request_id=request_id, schedule=ref)
    except ExportJobsError as err:  # the definition no longer fits the config, the lake or the segments
        log.warning("schedule %s: slot %s gets no job: %s", schedule.id, slot, err.detail)
        schedules.record_failure(ref, org, sandbox, err.detail)
        return None
    schedules.record_job(ref, org, sandbox, record.id)
    return record


def evaluations_of(definition_id: str, schedules: ScheduleStore, store: JobStore, org: str,
                   sandbox: str) -> list[str]:
    """The tenant's schedules and unfinished jobs that evaluate the segment definition, named for
    people: deleting it would make the schedule's next job fail to be created, and the job write
    back memberships of a segment that no longer exists."""
    users = [f"schedule {s.id}" for s in schedules.list(org, sandbox)
             if (s.job is not None and s.job.evaluation_info.segmentation
                 and any(r.segment_ns == "ups" and r.segment_id == definition_id for r in s.job.filter.segments or ()))
             or definition_id in (s.segments or ())]
    users += [f"job {r.id}" for r in store.unfinished(org, sandbox)
              if any(d.id == definition_id for d in r.segment_definitions or ())]
    return users


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


def list_schedules(store: ScheduleStore, org: str, sandbox: str, limit: int = 50,
                   offset: str | None = None) -> dict[str, Any]:
    """A page of schedules, newest first, in the same shape as the jobs' and definitions' lists."""
    after = SCHEDULE_CURSOR.decode(offset) if offset else None
    found = store.page(org, sandbox, limit + 1, after)
    return cursor_page("records", found, limit, offset, SCHEDULE_CURSOR, "/config/schedules")


def next_runs(store: ScheduleStore, schedule_id: str, org: str, sandbox: str, count: int) -> dict[str, Any]:
    """When an active schedule will next create a job: its next `count` slots (none while it is paused or
    failed), RFC 3339 in UTC."""
    schedule = store.get(schedule_id, org, sandbox)
    slots = next_slots(schedule.cron, datetime.now(UTC), count) if schedule.state == SCHEDULE_ACTIVE else []
    return {"id": schedule.id, "state": schedule.state, "nextRuns": [format_rfc3339(slot) for slot in slots]}
