"""/segment/jobs: segment jobs in AEP's shape: evaluate segments and write back their memberships, with
no export; created, listed, read (one or in bulk) and cancelled."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from jobs.control import (
    SEGMENT_JOB,
    bulk_get_segment_jobs,
    cancel_segment_job,
    create_segment_job,
    list_segment_jobs,
    segment_job_document,
)
from jobs.shells.http.auth import BODY_ERRORS, ERRORS, NOT_FOUND, TENANT, Authorized, Body, Deployment, JobId, Jobs
from jobs.spec import ALL_SEGMENTS, ProblemDocument, SegmentJobStatus, json_object

segment_jobs = APIRouter(prefix="/segment/jobs")
ITEM = {"type": "object", "properties": {"segmentId": {"type": "string", "minLength": 1}},
        "required": ["segmentId"], "additionalProperties": False}
REQUEST_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "array", "minItems": 1,
    "items": {"anyOf": [ITEM, {"type": "string", "enum": [ALL_SEGMENTS]}]},
    "description": 'The segments to evaluate, [{"segmentId": ...}], or ["*"] for every definition of the sandbox'}}}}}
IDS_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["ids"],
    "properties": {"ids": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}},
                                                       "required": ["id"]}}}}}}}}
CONFLICT: dict[int | str, dict[str, object]] = {
    409: {"model": ProblemDocument, "description": "The job has already finished"}}


@segment_jobs.post("", responses={**ERRORS, **BODY_ERRORS}, openapi_extra={**TENANT, **REQUEST_BODY},
                   summary="Create a segment job: evaluate segments and write back their memberships")
async def create_segment_job_route(request: Request, scope: Authorized, config: Deployment, store: Jobs,
                                   body: Body) -> JSONResponse:
    request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    record = await run_in_threadpool(create_segment_job, store, config, body, scope.org, scope.sandbox, request_id)
    return JSONResponse(segment_job_document(record))


@segment_jobs.get("", responses=ERRORS, openapi_extra=TENANT, summary="List segment jobs, newest first")
def list_segment_job_route(
    scope: Authorized,
    store: Jobs,
    limit: Annotated[int, Query(ge=1, le=1000, description="Jobs per page")] = 50,
    offset: Annotated[str | None, Query(
        pattern=r"^[0-9]+_[0-9]+$",
        description="Cursor `{creationTime}_{id}` from `_links.next`: the page after that job")] = None,
    status: Annotated[SegmentJobStatus | None, Query(description="Only jobs with this status")] = None,
) -> JSONResponse:
    return JSONResponse(list_segment_jobs(store, scope.org, scope.sandbox, limit, offset, status))


@segment_jobs.post("/bulk-get", responses={**ERRORS, **BODY_ERRORS}, openapi_extra={**TENANT, **IDS_BODY},
                   summary="Get several segment jobs by id")
def bulk_get_route(scope: Authorized, store: Jobs, body: Body) -> JSONResponse:
    return JSONResponse(bulk_get_segment_jobs(store, json_object(body), scope.org, scope.sandbox))


@segment_jobs.get("/{id}", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT, summary="Get a segment job")
def get_segment_job(scope: Authorized, store: Jobs, id_: JobId) -> JSONResponse:
    return JSONResponse(segment_job_document(store.get(id_, scope.org, scope.sandbox, SEGMENT_JOB)))


@segment_jobs.delete("/{id}", responses={**ERRORS, **NOT_FOUND, **CONFLICT}, openapi_extra=TENANT,
                     summary="Cancel a segment job: QUEUED ends CANCELLED at once; a running one is CANCELLING")
def cancel_segment_job_route(scope: Authorized, store: Jobs, id_: JobId) -> JSONResponse:
    return JSONResponse(cancel_segment_job(store, id_, scope.org, scope.sandbox))
