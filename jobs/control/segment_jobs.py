"""Segment jobs (docs/reference/segments.md#segment-jobs): created, listed, read and cancelled in AEP's
`/segment/jobs` shape. A segment job is a job record of `jobType` SEGMENTATION in the job table, so the
runner that runs export jobs runs it too, under the same lease, retries and cancel; this module turns
requests into such records and records into AEP's documents.
"""

from __future__ import annotations

import uuid
from typing import Any

from jobs.control.jobs import JOB_CURSOR, SEGMENT_JOB, JobStore, cancel_job, check_active_jobs
from jobs.control.segments import SegmentStore
from jobs.planner import Schemas
from jobs.spec import (
    PROFILE_SCHEMA,
    Config,
    ExportFilter,
    JobRecord,
    JobStatus,
    MergePolicyRef,
    Metrics,
    Problem,
    RecordEvaluation,
    RequestRejected,
    ScheduleRef,
    SchemaRef,
    SegmentDefinition,
    SegmentFilter,
    SegmentJobStatus,
    SegmentSnapshot,
    TimeSpan,
    job_status,
    now_ms,
    parse_segment_job_request,
    pql,
    segment_job_status,
)


def create_segment_job(store: JobStore, config: Config, body: str | bytes | list[Any], org: str, sandbox: str,
                       request_id: str | None = None, *, schedule: ScheduleRef | None = None,
                       dry_run: bool = False) -> JobRecord:
    """Validate a segment job request (the listed definitions, or every one of the sandbox for ["*"]) and
    store it as a NEW segment job; RequestRejected, nothing stored, when it is bad. `schedule`: set by the
    scheduler only; `dry_run`: every check, and the record it would store with id 0, storing nothing."""
    listed = parse_segment_job_request(body)
    definitions = SegmentStore(config.segment_table_path).all(org, sandbox)
    chosen = _chosen(listed, definitions)
    scoped = config.for_tenant(org, sandbox)
    problems = []
    if scoped.segmentation_dataset is None:
        problems.append(Problem(path="$", message="this org and sandbox have no segmentation dataset "
                                                  "(segmentationDataset) to write evaluated memberships to"))
    policies = {d.merge_policy_id for d in chosen}
    if len(policies) > 1:
        groups = "; ".join(f"{policy}: {', '.join(d.id for d in chosen if d.merge_policy_id == policy)}"
                           for policy in sorted(policies))
        raise RequestRejected.at("$", f"the segments use different merge policies, and a segment job evaluates "
                                      f"under one: create one segment job per policy ({groups})")
    policy = scoped.latest_policy(policies.pop())
    if policy is None:
        raise RequestRejected.at("$", "the segments' merge policy is no longer declared")
    schemas = Schemas.of(policy, scoped)
    for i, definition in enumerate(chosen):
        try:
            schemas.checked(definition.pql)
        except pql.PqlError as err:
            path = f"[{i}].segmentId" if listed is not None else "$"
            problems.append(Problem(path=path, message=f"segment {definition.id!r} no longer fits merge policy "
                                                       f"{policy.id!r}: {err}"))
    if problems:
        raise RequestRejected(problems)
    check_active_jobs(store, config, org, sandbox)
    created = now_ms()

    def record(job_id: int) -> JobRecord:
        return JobRecord(
            id=job_id, job_type=SEGMENT_JOB, ims_org_id=org, sandbox_name=sandbox, status=JobStatus.NEW,
            schema_=SchemaRef(name=PROFILE_SCHEMA),
            filter=ExportFilter(segments=[SegmentFilter(segmentId=d.id) for d in chosen]),
            merge_policy=MergePolicyRef(id=policy.id, version=policy.version),
            evaluation_info=RecordEvaluation(segmentation=True),
            segment_definitions=[SegmentSnapshot.of(d) for d in chosen],
            metrics=Metrics(total_time=TimeSpan(start_time_in_ms=created)),
            creation_time=created, update_time=created, request_id=request_id or str(uuid.uuid4()),
            schedule=schedule,
        )

    return record(0) if dry_run else store.create(record)


def _chosen(listed: list[str] | None, definitions: dict[str, SegmentDefinition]) -> list[SegmentDefinition]:
    if listed is None:
        if not definitions:
            raise RequestRejected.at("$", "this org and sandbox have no segment definitions to evaluate")
        return sorted(definitions.values(), key=lambda d: (d.creation_time, d.id))
    unknown = [Problem(path=f"[{i}].segmentId", message=f"no segment definition {s!r} in this org and sandbox")
               for i, s in enumerate(listed) if s not in definitions]
    if unknown:
        raise RequestRejected(unknown)
    return [definitions[s] for s in listed]


def segment_job_document(record: JobRecord) -> dict[str, Any]:
    """A segment job as AEP's `/segment/jobs` answers it."""
    metrics = record.metrics
    shown: dict[str, Any] = {
        "totalTime": metrics.total_time, "profileSegmentationTime": metrics.profile_segmentation_time,
        "segmentedProfileCounter": metrics.segmented_profile_counter,
        "segmentedProfileByNamespaceCounter": metrics.segmented_profile_by_namespace_counter,
        "segmentedProfileByStatusCounter": metrics.segmented_profile_by_status_counter,
        "totalProfiles": metrics.total_profiles,
    }
    document: dict[str, Any] = {
        "id": str(record.id),
        "imsOrgId": record.ims_org_id,
        "sandbox": {"sandboxName": record.sandbox_name},
        "profileInstanceId": record.profile_instance_id,
        "status": segment_job_status(record.status),
        "segments": [{"segmentId": s.id, "segment": {"id": s.id, "name": s.name,
                                                      "expression": {"type": "PQL", "format": "pql/text",
                                                                     "value": s.expression},
                                                      "mergePolicyId": s.merge_policy_id}}
                     for s in record.segment_definitions or ()],
        "mergePolicy": record.merge_policy.model_dump(by_alias=True),
        "schema": record.schema_.model_dump(),
        "metrics": {k: v.to_dict() if isinstance(v, TimeSpan) else v for k, v in shown.items() if v is not None},
        "errors": [e.to_dict() for e in record.errors],
        "requestId": record.request_id,
        "creationTime": record.creation_time,
        "updateTime": record.update_time,
    }
    extra = {"stage": record.stage, "retries": record.retries,
             "computeGatewayJobId": record.compute_gateway_job_id.export_job or None}
    return {**document, **{k: v for k, v in extra.items() if v is not None}}


def list_segment_jobs(store: JobStore, org: str, sandbox: str, limit: int = 50, offset: str | None = None,
                      status: SegmentJobStatus | None = None) -> dict[str, Any]:
    """A page of segment jobs, newest first: `children`, `_page` and `_links.next`."""
    after = JOB_CURSOR.decode(offset) if offset else None
    found = store.list(org, sandbox, limit + 1, after, job_status(status) if status else None, kind=SEGMENT_JOB)
    page, more = found[:limit], len(found) > limit
    next_link = None
    if more and page:
        cursor = JOB_CURSOR.encode(page[-1].creation_time, page[-1].id)
        next_link = f"/segment/jobs?limit={limit}&offset={cursor}" + (f"&status={status}" if status else "")
    return {"children": [segment_job_document(r) for r in page],
            "_page": {"sortField": "creationTime", "sort": "desc", "pageOffset": offset, "pageSize": len(page)},
            "_links": {"next": {"href": next_link}} if next_link else {}}


def bulk_get_segment_jobs(store: JobStore, body: dict[str, Any], org: str, sandbox: str) -> dict[str, Any]:
    """POST /segment/jobs/bulk-get: `{"ids": [{"id": ...}]}` → the tenant's jobs among them by id, and
    the ids it has no segment job of."""
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, dict) and isinstance(i.get("id"), str)
                                                        for i in ids):
        raise RequestRejected.at("ids", 'send {"ids": [{"id": "..."}, ...]}, at least one')
    if len(ids) > 1000:
        raise RequestRejected.at("ids", f"lists {len(ids)} ids; at most 1000")
    wanted = list(dict.fromkeys(i["id"] for i in ids))
    numbers = {i: int(i) for i in wanted if i.isascii() and i.isdigit() and len(i) <= 18}
    found = {r.id: segment_job_document(r) for r in store.get_many(numbers.values(), org, sandbox, SEGMENT_JOB)}
    results = {i: found[n] for i, n in numbers.items() if n in found}
    missing = [i for i in wanted if i not in results]
    return {"results": results, "notFound": missing}


def cancel_segment_job(store: JobStore, job_id: int, org: str, sandbox: str) -> dict[str, Any]:
    cancel_job(store, job_id, org, sandbox, SEGMENT_JOB)
    return {"status": True, "message": f"Segment job with id '{job_id}' has been marked for cancelling"}
