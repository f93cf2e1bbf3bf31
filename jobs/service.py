"""Job operations shared by the shells (CLI, HTTP API, spark-submit): no argv, no HTTP."""

from __future__ import annotations

import re
import uuid
from typing import Any

from jobs.clock import now_ms
from jobs.config import Config, MergePolicy
from jobs.definition_store import DefinitionStore
from jobs.model import (
    Batch,
    DefinitionSnapshot,
    JobDefinition,
    JobRecord,
    JobStatus,
    RecordDestination,
    ScheduleRef,
    dump_definition_part,
    parse_definition,
)
from jobs.plan import check_definition, snapshots
from jobs.store import JobStore, StatusConflict


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
    segment_definitions: list[DefinitionSnapshot] | None = None,
    schedule: ScheduleRef | None = None,
) -> JobRecord:
    """The NEW record for a definition: defaults filled in, batch ids assigned.

    `policy`: the merge policy check_definition resolved (default: the named one, else the
    config's default); `segment_definitions`: what an evaluating job evaluates.
    """
    chosen = policy or definition.merge_policy or config.default_policy()
    policy_dump = {"id": chosen.id, "version": chosen.version}
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
        schema_={"name": definition.schema_.name},
        filter=dump_definition_part(definition.filter),
        additional_fields=dump_definition_part(definition.additional_fields),
        merge_policy=policy_dump,
        evaluation_info=dump_definition_part(definition.evaluation_info),
        destination=destination,
        creation_time=created_ms,
        update_time=created_ms,
        request_id=request_id,
        segment_definitions=segment_definitions,
        schedule=schedule,
    )


def create_job(
    store: JobStore,
    config: Config,
    body: str | bytes | dict[str, Any],
    org: str,
    sandbox: str,
    request_id: str | None = None,
    *,
    schedule: ScheduleRef | None = None,
) -> JobRecord:
    """Validate a create request against the config and the lake, then store it as NEW.

    `schedule` is for the scheduler alone (jobs.schedules): a request never sets it.
    Raises RequestRejected (nothing written) when the request is bad.
    """
    definition = parse_definition(body)
    evaluates = definition.evaluation_info.segmentation
    definitions = DefinitionStore(config.segment_table_path).all(org, sandbox) if evaluates else {}
    policy = check_definition(definition, config, definitions)
    evaluated = snapshots(definition, definitions) if evaluates else None
    request_id = request_id or str(uuid.uuid4())
    created = now_ms()
    return store.create(
        lambda job_id: new_record(definition, config, job_id, org, sandbox, request_id, created, policy, evaluated,
                                  schedule)
    )


def cancel_job(store: JobStore, job_id: int, org: str, sandbox: str) -> JobRecord:
    """Cancel a job: NEW ends CANCELLED at once; PROCESSING is marked CANCELLING and its
    runner stops the Spark work and ends it CANCELLED. A finished job raises StatusConflict.
    """
    for _ in range(5):
        record = store.get(job_id, org, sandbox)
        if record.status is JobStatus.CANCELLING:
            return record
        if record.status.finished:
            raise StatusConflict(job_id, record.status.value, [JobStatus.NEW, JobStatus.PROCESSING])
        target = JobStatus.CANCELLED if record.status is JobStatus.NEW else JobStatus.CANCELLING
        changed = record.model_copy(update={"status": target, "update_time": now_ms()})
        try:
            return store.replace(changed, expected=[record.status])
        except StatusConflict:
            continue  # the runner moved it meanwhile (e.g. NEW → PROCESSING): look again
    raise StatusConflict(job_id, store.get(job_id).status.value, [JobStatus.NEW, JobStatus.PROCESSING])


def encode_cursor(record: JobRecord) -> str:
    return f"{record.creation_time}_{record.id}"


def decode_cursor(text: str) -> tuple[int, int]:
    """'{creationTime}_{id}' → (creationTime, id); ValueError names the bad value."""
    if not re.fullmatch(r"[0-9]{1,19}_[0-9]{1,19}", text):
        raise ValueError(f"offset {text!r} is not a cursor of the form {{creationTime}}_{{id}}")
    created, _, job_id = text.partition("_")
    return int(created), int(job_id)


def list_jobs(
    store: JobStore,
    org: str,
    sandbox: str,
    limit: int = 50,
    offset: str | None = None,
    status: JobStatus | None = None,
) -> tuple[list[JobRecord], str | None]:
    """A page of jobs, newest first, and the cursor of the next page (None on the last)."""
    before = decode_cursor(offset) if offset else None
    records = store.list(org, sandbox, limit + 1, before, status)
    page, more = records[:limit], len(records) > limit
    return page, (encode_cursor(page[-1]) if more and page else None)


def page_document(
    records: list[JobRecord],
    limit: int,
    offset: str | None,
    next_offset: str | None,
    status: JobStatus | None = None,
) -> dict[str, Any]:
    """A list response shaped as the seeds': records, page, link.next."""
    link = {}
    if next_offset:
        query = f"limit={limit}&offset={next_offset}" + (f"&status={status.value}" if status else "")
        link["next"] = f"/export/jobs/?{query}"
    return {
        "records": [r.to_dict() for r in records],
        "page": {"sortField": "createdTime", "sort": "desc", "pageOffset": offset, "pageSize": len(records)},
        "link": link,
    }
