"""Export jobs: the job table and the operations the shells call on it (create, cancel, list).

The job table (docs/reference/job-table.md) is one Delta table with one current row
per job, a `DeltaRows` table (jobs.control.tables): read and written with delta-rs,
so that creating, reading and listing jobs needs no JVM. Every change is a
conditional commit (`UPDATE … WHERE id = … AND status IN …`), and a condition that
no longer holds is reported to the caller (StatusConflict) instead of overwriting
the other writer's change. The operations take no argv and no HTTP: the CLI, the
HTTP API and spark-submit share them.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
from deltalake import write_deltalake
from deltalake.exceptions import DeltaError

from jobs.control.pages import JOB_CURSOR, page_document
from jobs.control.segments import SegmentStore
from jobs.control.tables import (
    COMPACT_AFTER_FILES,
    RETRIES,
    DeltaRows,
    all_of,
    before,
    below,
    equal,
    literal,
    one_of,
    retry_commits,
    tenant,
)
from jobs.planner import (
    build_plan,
    check_job,
    explain_plan,
    gone_versions,
    input_versions,
    member_segments,
    segment_warnings,
    snapshots,
)
from jobs.spec import (
    Batch,
    Config,
    Conflict,
    InputVersionGone,
    JobDefinition,
    JobInputs,
    JobRecord,
    JobStatus,
    MergePolicy,
    MergePolicyRef,
    Metrics,
    NotFound,
    RecordDestination,
    RecordEvaluation,
    RequestRejected,
    ScheduleRef,
    SegmentSnapshot,
    TimeSpan,
    now_ms,
    parse_definition,
)

JOB_TABLE_SCHEMA = pa.schema([
    ("id", pa.int64()),
    ("imsOrgId", pa.string()),
    ("sandboxName", pa.string()),
    ("status", pa.string()),
    ("creationTime", pa.int64()),
    ("updateTime", pa.int64()),
    ("record", pa.string()),
    # The runner holding a PROCESSING or CANCELLING job, and until when (epoch ms).
    ("runner", pa.string()),
    ("leaseUntil", pa.int64()),
    # A running job's progress: renewing the lease writes it and updateTime, never `record`, which
    # reads take them from (JobStore.replace with renewal).
    ("stage", pa.string()),
    # BATCH (an export job) or SEGMENTATION (a segment job); null in rows written before segment jobs: BATCH.
    ("jobType", pa.string()),
])
# Checkpoints keep opening and catching up cheap; compaction keeps reads to a few files.
CHECKPOINT_EVERY = 10
# A job table made with this description is named in Delta's idempotent-write ids
# (`export-jobs-{deployment}-job-{id}`) by its Delta table id, a random UUID given at creation:
# a job table made again, whose job ids start again at 1, never shares a transaction id with the
# jobs of the one before. (delta-rs refuses table properties of its own; the description it keeps.)
JOB_TABLE_DESCRIPTION = "export-jobs job table; its Delta table id names the deployment"


JobType = Literal["BATCH", "SEGMENTATION"]
EXPORT_JOB: JobType = "BATCH"
SEGMENT_JOB: JobType = "SEGMENTATION"


class JobNotFound(NotFound):
    pass


@dataclass(frozen=True)
class Lease:
    """What a conditional write sets and requires of the job's runner columns.

    `holder`: the runner that must hold the job (None: no requirement);
    `runner`/`until`: the new holder and expiry (runner None clears the lease).
    """

    runner: str | None
    until: int | None
    holder: str | None = None


class StatusConflict(Conflict):
    """The job is not in a status that allows the change."""

    def __init__(self, job_id: int, status: str, wanted: Iterable[JobStatus], consequence: str = ""):
        self.status = status
        allowed = ", ".join(s.value for s in wanted)
        super().__init__(f"job {job_id} is {status}, not {allowed}" + (f": {consequence}" if consequence else ""))


class JobStore(DeltaRows):
    NAME = "jobs"
    SCHEMA = JOB_TABLE_SCHEMA

    def __init__(self, path: str, on_finished: Callable[[JobRecord], None] | None = None):
        """`on_finished`: called with every record this store writes as SUCCEEDED, FAILED or CANCELLED,
        once its write is committed (the webhooks' events: jobs.control.webhooks.job_event_recorder)."""
        super().__init__(path)
        self.on_finished = on_finished

    # -- reads

    def deployment(self, legacy: str) -> str:
        """The table's deployment id; `legacy` (Config.deployment) for a table made before tables
        stored one, so that its jobs' retries still find their commits."""
        table = self._table()
        if table is None or table.metadata().description != JOB_TABLE_DESCRIPTION:
            return legacy
        return str(table.metadata().id)  # a UUID

    def get(self, job_id: int, org: str | None = None, sandbox: str | None = None,
            kind: JobType | None = None) -> JobRecord:
        """A job of the tenant (any tenant's without org and sandbox), of that `kind` if given."""
        where = all_of(equal("id", int(job_id)), tenant(org, sandbox), of_kind(kind) if kind else None)
        rows = self._query(f"SELECT {RECORD} FROM jobs WHERE {where}")
        if not rows:
            raise JobNotFound(f"no {'segment' if kind == SEGMENT_JOB else 'export'} job {job_id}")
        return stored_record(rows[0])

    def get_many(self, job_ids: Iterable[int], org: str, sandbox: str, kind: JobType) -> builtins.list[JobRecord]:
        """The tenant's jobs of that `kind` among `job_ids`, in one query (the others are left out)."""
        ids = [int(i) for i in job_ids]
        if not ids:
            return []
        where = all_of(one_of("id", ids), tenant(org, sandbox), of_kind(kind))
        rows = self._query(f"SELECT {RECORD} FROM jobs WHERE {where}")
        return [stored_record(r) for r in rows]

    def list(
        self,
        org: str,
        sandbox: str,
        limit: int = 50,
        after: tuple[int, int] | None = None,
        status: JobStatus | None = None,
        kind: JobType = EXPORT_JOB,
    ) -> builtins.list[JobRecord]:
        """Newest first; `after` is the (creationTime, id) of the last job already seen."""
        where = all_of(tenant(org, sandbox), of_kind(kind), equal("status", status.value) if status else None,
                       before(*after) if after else None)
        rows = self._query(
            f"SELECT {RECORD} FROM jobs WHERE {where} ORDER BY creationTime DESC, id DESC LIMIT {int(limit)}"
        )
        return [stored_record(r) for r in rows]

    def recent_namespaces(self, org: str, sandbox: str, jobs: int = 20) -> set[str]:
        """The identity namespaces that the tenant's latest succeeded jobs counted in their exports."""
        records = self.list(org, sandbox, limit=jobs, status=JobStatus.SUCCEEDED)
        return {ns for r in records for ns in r.metrics.exported_profile_by_namespace_counter or {}}

    def unfinished(self, org: str, sandbox: str) -> builtins.list[JobRecord]:
        """The tenant's jobs that are NEW, PROCESSING or CANCELLING, oldest first."""
        where = all_of(tenant(org, sandbox), one_of("status", [s.value for s in JobStatus if not s.finished]))
        return [stored_record(r) for r in self._query(f"SELECT {RECORD} FROM jobs WHERE {where} ORDER BY id")]

    def ids_with_status(self, status: JobStatus) -> builtins.list[int]:
        rows = self._query(f"SELECT id FROM jobs WHERE {equal('status', status.value)} ORDER BY id")
        return [r["id"] for r in rows]

    def running(self, lease_expired_before: int | None = None) -> builtins.list[dict[str, Any]]:
        """PROCESSING and CANCELLING jobs (only those whose lease ran out before then, if given):
        id, status, runner, leaseUntil."""
        where = all_of(one_of("status", [JobStatus.PROCESSING.value, JobStatus.CANCELLING.value]),
                       below("leaseUntil", lease_expired_before) if lease_expired_before is not None else None)
        return self._query(f"SELECT id, status, runner, leaseUntil FROM jobs WHERE {where} ORDER BY id")

    def metric_rows(self, records_since: int | None = None
                    ) -> tuple[builtins.list[dict[str, Any]], builtins.list[dict[str, Any]]]:
        """For GET /metrics, of one version of the table: the jobs by kind, status and tenant (`jobs`, and
        the latest `updateTime` of each group), and the finished jobs' records (only those last updated at
        `records_since` or later, if given: a finished record does not change)."""
        tenant_columns = "jobType, status, imsOrgId, sandboxName"
        finished = all_of(one_of("status", [s.value for s in JobStatus if s.finished]),
                          f"updateTime >= {literal(records_since)}" if records_since is not None else None)
        groups, records = self._queries(
            f"SELECT {tenant_columns}, count(*) AS jobs, max(updateTime) AS updateTime FROM jobs "
            f"GROUP BY {tenant_columns}",
            f"SELECT id, {tenant_columns}, updateTime, record FROM jobs WHERE {finished}")
        return groups, records

    # -- writes

    def create(self, build: Callable[[int], JobRecord]) -> JobRecord:
        """Store the record `build(id)` under the next free id."""

        def attempt() -> JobRecord | None:
            rows = self._query("SELECT max(id) AS top FROM jobs")
            job_id = (rows[0]["top"] or 0) + 1 if rows else 1
            record = build(job_id)
            source = pa.Table.from_pylist([job_row(record)], schema=JOB_TABLE_SCHEMA)
            table = self._table()
            if table is None:
                try:
                    write_deltalake(self.path, source, mode="error", description=JOB_TABLE_DESCRIPTION,
                                    configuration={"delta.checkpointInterval": str(CHECKPOINT_EVERY)})
                    return record
                except DeltaError:  # another creator made the table first: try again
                    if self._table() is None:
                        raise
                    return None
            result = (
                table.merge(source, predicate="t.id = s.id", source_alias="s", target_alias="t")
                .when_not_matched_insert_all()
                .execute()
            )
            return record if result.get("num_target_rows_inserted") == 1 else None

        for _ in range(RETRIES):
            with self._lock:
                record = retry_commits(attempt)
            if record is not None:
                # Every job adds a file: look at the file list every COMPACT_AFTER_FILES commits.
                if record.id % COMPACT_AFTER_FILES == 0:
                    self.compact()
                return record
        raise RuntimeError(f"could not allocate a job id in {self.path} after {RETRIES} tries")

    def replace(
        self,
        record: JobRecord,
        expected: Iterable[JobStatus],
        lease: Lease | None = None,
        expired_before: int | None = None,
        renewal: bool = False,
    ) -> JobRecord:
        """Store `record` if the stored job is still in one of the `expected` statuses
        (and, with `lease.holder`, still held by that runner; with `expired_before`,
        its lease ran out before then). Raises StatusConflict otherwise.

        A `renewal` (a running job's lease extended, its stage published) writes only the lease,
        `stage` and `updateTime`, not the record: reads take those two from their columns
        (stored_record), so a renewal every few seconds never copies the record.
        """
        expected = tuple(expected)
        row = job_row(record)
        written = ("updateTime", "stage") if renewal else ("status", "updateTime", "record", "stage")
        updates = {column: literal(row[column]) for column in written}
        if lease is not None:
            updates["runner"] = literal(lease.runner)
            updates["leaseUntil"] = literal(lease.until)
        predicate = all_of(
            equal("id", record.id),
            one_of("status", [s.value for s in expected]),
            equal("runner", lease.holder) if lease is not None and lease.holder is not None else None,
            below("leaseUntil", expired_before) if expired_before is not None else None,
        )

        if self._update(updates, predicate) != 1:
            current = self.get(record.id)
            raise StatusConflict(record.id, current.status.value, expected)
        if self.on_finished is not None and not renewal and record.status.finished:
            self.on_finished(record)
        return record


# The columns a record is read from: the record, and what renewals change without rewriting it.
RECORD = "record, stage, updateTime"


def stored_record(row: dict[str, Any]) -> JobRecord:
    """The record of a job table row, with the stage and update time of its runner's last renewal."""
    record = JobRecord.model_validate_json(row["record"])
    if row["updateTime"] <= record.update_time:
        return record
    return record.updated(stage=row["stage"], update_time=row["updateTime"])


def job_row(record: JobRecord) -> dict[str, Any]:
    """The table row of a record (no lease), in JOB_TABLE_SCHEMA's columns."""
    return {
        "id": record.id,
        "imsOrgId": record.ims_org_id,
        "sandboxName": record.sandbox_name,
        "status": record.status.value,
        "creationTime": record.creation_time,
        "updateTime": record.update_time,
        "record": record.to_json(),
        "runner": None,
        "leaseUntil": None,
        "stage": record.stage,
        "jobType": record.job_type,
    }


def of_kind(kind: JobType) -> str:
    """The rows of one kind of job; a row written before segment jobs existed is an export job's."""
    return equal("jobType", kind) if kind == SEGMENT_JOB else f"(jobType IS NULL OR {equal('jobType', kind)})"


# ---------------------------------------------------------------- operations


def new_batch_id() -> str:
    return uuid.uuid4().hex


def new_record(
    definition: JobDefinition,
    config: Config,
    job_id: int,
    org: str,
    sandbox: str,
    request_id: str,
    created_ms: int,
    policy: MergePolicy | None = None,
    segment_definitions: list[SegmentSnapshot] | None = None,
    schedule: ScheduleRef | None = None,
) -> JobRecord:
    """The NEW record for a definition: defaults filled in, batch ids assigned.

    `policy`: the merge policy check_job resolved (default: the named one, else the
    config's default); `segment_definitions`: what an evaluating job evaluates.
    """
    chosen = policy or definition.merge_policy or config.default_policy()
    dest = definition.destination
    if dest.segment_per_batch:
        destination = RecordDestination(
            dataset_id=dest.dataset_id,
            segment_per_batch=True,
            batches=[
                Batch(segment_id=s.segment_id, segment_ns=s.segment_ns, status=s.status,
                      batch_id=new_batch_id())
                for s in definition.filter.segments or ()
            ],
        )
    else:
        destination = RecordDestination(
            dataset_id=dest.dataset_id, segment_per_batch=False, batch_id=new_batch_id()
        )
    return JobRecord(
        id=job_id,
        ims_org_id=org,
        sandbox_name=sandbox,
        status=JobStatus.NEW,
        fields=definition.fields,
        schema_=definition.schema_,
        filter=definition.filter,
        additional_fields=definition.additional_fields,
        merge_policy=MergePolicyRef(id=chosen.id, version=chosen.version),
        evaluation_info=RecordEvaluation(segmentation=definition.evaluation_info.segmentation),
        destination=destination,
        # As the seeds' create response: totalTime starts at creation until a runner claims the job.
        metrics=Metrics(total_time=TimeSpan(start_time_in_ms=created_ms)),
        creation_time=created_ms,
        update_time=created_ms,
        request_id=request_id,
        segment_definitions=segment_definitions,
        schedule=schedule,
    )


def check_active_jobs(store: JobStore, config: Config, org: str, sandbox: str) -> None:
    """Refuse another job of any kind while the tenant has limits.activeJobsPerTenant unfinished ones."""
    active = len(store.unfinished(org, sandbox))
    if active >= config.limits.active_jobs_per_tenant:
        raise RequestRejected.at("$", f"this org and sandbox have {active} jobs NEW, PROCESSING or CANCELLING, the "
                                      "most limits.activeJobsPerTenant allows: wait for some to finish")


def create_job(
    store: JobStore,
    config: Config,
    body: str | bytes | dict[str, Any],
    org: str,
    sandbox: str,
    request_id: str | None = None,
    *,
    schedule: ScheduleRef | None = None,
    dry_run: bool = False,
) -> JobRecord:
    """Validate a create request against the config and the lake, then store it as NEW.

    `schedule` is for the scheduler alone (jobs.control.schedules): a request never sets it.
    `dry_run`: make every check and return the record it would store, with id 0, storing nothing.
    Raises RequestRejected (nothing written) when the request is bad.
    """
    definition = parse_definition(body)
    check_active_jobs(store, config, org, sandbox)
    evaluates = definition.evaluation_info.segmentation
    scoped = config.for_tenant(org, sandbox)
    definitions = SegmentStore(config.segment_table_path).all(org, sandbox) if definition.filter.segments else {}
    resolved = check_job(definition, scoped, definitions)
    evaluated = snapshots(definition, definitions) if evaluates else None
    warnings = resolved.warnings + segment_warnings(definition, definitions, lambda: member_segments(scoped))
    request_id = request_id or str(uuid.uuid4())
    created = now_ms()

    def record(job_id: int) -> JobRecord:
        made = new_record(definition, config, job_id, org, sandbox, request_id, created, resolved.policy, evaluated,
                          schedule)
        return made.updated(warnings=warnings or None, consent_policies=resolved.consent or None)

    return record(0) if dry_run else store.create(record)


def replay_job(store: JobStore, config: Config, job_id: int, destination_id: str, org: str, sandbox: str,
               request_id: str | None = None) -> JobRecord:
    """A NEW job that runs job `job_id` again into `destination_id`: at the table versions it read, with
    its `now` and its segment definitions, so that it writes the rows the original wrote
    (docs/reference/mirrors.md#replays). The tenant's erasures since then still apply. Raises Conflict
    if the job never ran, InputVersionGone if retention removed a version it read."""
    original = store.get(job_id, org, sandbox)
    if original.inputs is None:
        raise Conflict(f"job {job_id} has not read the lake yet ({original.status.value}): it has no table versions "
                       "to replay; wait for it to run")
    gone = gone_versions(config.for_tenant(org, sandbox), original.inputs.versions)
    if gone:
        raise InputVersionGone(f"job {job_id} cannot be replayed: " + "; ".join(gone)
                               + ". Raise the table's retention (delta.logRetentionDuration, "
                               "delta.deletedFileRetentionDuration) to replay jobs this old.")
    definition = original.definition()
    definition = definition.model_copy(update={"destination": definition.destination.model_copy(
        update={"dataset_id": destination_id})})
    check_active_jobs(store, config, org, sandbox)
    definitions = SegmentStore(config.segment_table_path).all(org, sandbox) if definition.filter.segments else {}
    resolved = check_job(definition, config.for_tenant(org, sandbox), definitions)
    versions, created = original.inputs.versions, now_ms()

    def record(new_id: int) -> JobRecord:
        made = new_record(definition, config, new_id, org, sandbox, request_id or str(uuid.uuid4()), created,
                          resolved.policy, original.segment_definitions)
        return made.updated(evaluation_info=original.evaluation_info, replay_of=original.id,
                            inputs=JobInputs(versions=versions),
                            consent_policies=resolved.consent or None)

    return store.create(record)


def explain_job(store: JobStore, config: Config, body: str | bytes | dict[str, Any], org: str,
                sandbox: str) -> dict[str, Any]:
    """What a job would read and do (`export-jobs explain`): every check `create` makes, then its plan
    described, with the Delta version of each dataset as a first run would fix it; nothing is written."""
    record = create_job(store, config, body, org, sandbox, dry_run=True)
    plan = build_plan(record, config, store.deployment(config.deployment))
    return {"mergePolicy": record.merge_policy.model_dump(by_alias=True),
            **explain_plan(plan, input_versions(config.for_tenant(org, sandbox)))}


def cancel_job(store: JobStore, job_id: int, org: str, sandbox: str, kind: JobType = EXPORT_JOB) -> JobRecord:
    """Cancel a job: NEW ends CANCELLED at once; PROCESSING is marked CANCELLING and its
    runner stops the Spark work and ends it CANCELLED. A finished job raises StatusConflict.
    """
    cancellable = [JobStatus.NEW, JobStatus.PROCESSING]
    for _ in range(5):
        record = store.get(job_id, org, sandbox, kind)
        if record.status is JobStatus.CANCELLING:
            return record
        if record.status.finished:
            raise StatusConflict(job_id, record.status.value, cancellable, "it cannot be cancelled any more")
        target = JobStatus.CANCELLED if record.status is JobStatus.NEW else JobStatus.CANCELLING
        try:
            return store.replace(record.updated(status=target, update_time=now_ms()), expected=[record.status])
        except StatusConflict:
            continue  # the runner moved it meanwhile (e.g. NEW → PROCESSING): look again
    raise StatusConflict(job_id, store.get(job_id).status.value, cancellable, "it cannot be cancelled any more")


def list_jobs(
    store: JobStore,
    org: str,
    sandbox: str,
    limit: int = 50,
    offset: str | None = None,
    status: JobStatus | None = None,
) -> dict[str, Any]:
    """A page of jobs, newest first, shaped as the seeds' list: records, page, link.next."""
    after = JOB_CURSOR.decode(offset) if offset else None
    found = store.list(org, sandbox, limit + 1, after, status)
    page, more = found[:limit], len(found) > limit
    next_link = None
    if more and page:
        # As in the seeds, link.next names /export/jobs/ (answered directly, not redirected).
        query = f"limit={limit}&offset={JOB_CURSOR.encode(page[-1].creation_time, page[-1].id)}"
        next_link = "/export/jobs/?" + query + (f"&status={status.value}" if status else "")
    return page_document("records", [r.to_dict() for r in page], "createdTime", offset, next_link)
