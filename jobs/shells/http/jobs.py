"""/export/jobs: create, list, get, cancel and replay export jobs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from jobs.control import EXPORT_JOB, cancel_job, create_job, list_jobs, replay_job
from jobs.shells.http.auth import (
    BODY_ERRORS,
    COMPONENTS,
    ERRORS,
    NOT_FOUND,
    TENANT,
    TENANT_HEADERS,
    Authorized,
    Body,
    Deployment,
    JobId,
    Jobs,
    body_schema,
    header,
)
from jobs.shells.http.documents import CancelAnswer, JobPage
from jobs.spec import JobRecord, JobStatus, ProblemDocument, ReplayRequest

CANCELLING = {"status": True, "message": "Export job has been marked for cancelling"}

export_jobs = APIRouter(prefix="/export/jobs")


# link.next, as in the seeds, names /export/jobs/: answered directly rather than redirected.
@export_jobs.get("", response_model=JobPage, responses=ERRORS, openapi_extra=TENANT,
                 summary="List export jobs, newest first")
@export_jobs.get("/", include_in_schema=False)
def list_export_jobs(
    scope: Authorized,
    store: Jobs,
    limit: Annotated[int, Query(ge=1, le=1000, description="Jobs per page")] = 50,
    offset: Annotated[str | None, Query(
        pattern=r"^[0-9]+_[0-9]+$",
        description="Cursor `{creationTime}_{id}` from `link.next`: the page after that job")] = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs with this status")] = None,
) -> JSONResponse:
    return JSONResponse(list_jobs(store, scope.org, scope.sandbox, limit, offset, status))


@export_jobs.post(
    "",
    response_model=JobRecord,
    summary="Create an export job (answers its NEW record)",
    responses={**ERRORS, **BODY_ERRORS,
               422: {"model": ProblemDocument, "description": "The lake does not match the config"}},
    openapi_extra={
        "parameters": [*TENANT_HEADERS, header("x-request-id", "Stored as the job's requestId", False)],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": COMPONENTS + "JobDefinition"}}}},
    },
)
@export_jobs.post("/", include_in_schema=False)
async def create_export_job(request: Request, scope: Authorized, config: Deployment, store: Jobs,
                            body: Body) -> JSONResponse:
    request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    record = await run_in_threadpool(create_job, store, config, body, scope.org, scope.sandbox, request_id)
    return JSONResponse(record.to_dict())


@export_jobs.get("/{id}", response_model=JobRecord, responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT,
                 summary="Get an export job")
def get_export_job(scope: Authorized, store: Jobs, id_: JobId) -> JSONResponse:
    return JSONResponse(store.get(id_, scope.org, scope.sandbox, EXPORT_JOB).to_dict())


@export_jobs.delete(
    "/{id}",
    response_model=CancelAnswer,
    summary="Cancel an export job",
    description="A NEW job ends CANCELLED at once; a running one is marked CANCELLING and stopped.",
    responses={**ERRORS, **NOT_FOUND, 409: {"model": ProblemDocument, "description": "The job has already finished"}},
    openapi_extra=TENANT,
)
def cancel_export_job(scope: Authorized, store: Jobs, id_: JobId) -> JSONResponse:
    cancel_job(store, id_, scope.org, scope.sandbox)
    return JSONResponse(CANCELLING)


@export_jobs.post(
    "/{id}/replay",
    response_model=JobRecord,
    summary="Replay an export job into another destination (answers the replay's NEW record)",
    description="A new job that runs this one again at the table versions it read, with its `now`, into "
                "`destination.datasetId`: it writes the rows the original wrote. 409 if the job has not read the "
                "lake yet; 422 (INPUT_VERSION_GONE) if retention removed a version it read.",
    responses={**ERRORS, **BODY_ERRORS, **NOT_FOUND,
               409: {"model": ProblemDocument, "description": "The job has not run yet"},
               422: {"model": ProblemDocument, "description": "A table version the job read is gone"}},
    openapi_extra={
        "parameters": [*TENANT_HEADERS, header("x-request-id", "Stored as the replay's requestId", False)],
        **body_schema(ReplayRequest),
    },
)
async def replay_export_job(request: Request, scope: Authorized, config: Deployment, store: Jobs, id_: JobId,
                            body: Body) -> JSONResponse:
    replay = ReplayRequest.parse(body)
    request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    record = await run_in_threadpool(replay_job, store, config, id_, replay.destination.dataset_id, scope.org,
                                     scope.sandbox, request_id)
    return JSONResponse(record.to_dict())
