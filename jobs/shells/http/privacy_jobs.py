"""/privacy/jobs: access and delete requests in the shape of AEP's Privacy Service, listed and read."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from jobs.control import access_document, create_privacy_jobs, list_privacy_jobs
from jobs.shells.http.auth import (
    BODY_ERRORS,
    ERRORS,
    NOT_FOUND,
    TENANT,
    Authorized,
    Body,
    PrivacyJobId,
    PrivacyJobs,
    body_schema,
)
from jobs.spec import PrivacyRequest, PrivacyStatus

privacy_jobs = APIRouter(prefix="/privacy/jobs")


@privacy_jobs.post("", responses={**ERRORS, **BODY_ERRORS}, openapi_extra={**TENANT, **body_schema(PrivacyRequest)},
                   summary="Create privacy jobs: one per user, each an access and/or delete request")
async def create_privacy_job(request: Request, scope: Authorized, store: PrivacyJobs, body: Body) -> JSONResponse:
    request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    answer = await run_in_threadpool(create_privacy_jobs, store, body, scope.org, scope.sandbox, request_id)
    return JSONResponse(answer)


@privacy_jobs.get("", responses=ERRORS, openapi_extra=TENANT, summary="List privacy jobs, newest first")
def list_privacy_job(
    scope: Authorized,
    store: PrivacyJobs,
    limit: Annotated[int, Query(ge=1, le=1000, description="Jobs per page")] = 50,
    offset: Annotated[str | None, Query(
        pattern=r"^[0-9]+_[0-9a-f-]+$",
        description="Cursor `{creationTime}_{jobId}` from `link.next`: the page after that job")] = None,
    status: Annotated[PrivacyStatus | None, Query(description="Only jobs with this status")] = None,
) -> JSONResponse:
    return JSONResponse(list_privacy_jobs(store, scope.org, scope.sandbox, limit, offset, status))


@privacy_jobs.get("/{jobId}", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT, summary="Get a privacy job")
def get_privacy_job(scope: Authorized, store: PrivacyJobs, job_id: PrivacyJobId) -> JSONResponse:
    return JSONResponse(store.get(job_id, scope.org, scope.sandbox).to_dict())


@privacy_jobs.get("/{jobId}/document", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT,
                  summary="Get a privacy job's access document: every row of the person in every dataset")
def get_access_document(scope: Authorized, store: PrivacyJobs, job_id: PrivacyJobId) -> JSONResponse:
    return JSONResponse(access_document(store, job_id, scope.org, scope.sandbox))
