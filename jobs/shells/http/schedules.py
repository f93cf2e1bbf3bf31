"""/config/schedules: recurring exports and segment jobs, in AEP's shape (and the earlier {cron, incremental, job})."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from jobs.control import create_schedule, list_schedules, next_runs, patch_schedule
from jobs.shells.http.auth import (
    BODY_ERRORS,
    ERRORS,
    NOT_FOUND,
    TENANT,
    Authorized,
    Body,
    Deployment,
    ScheduleId,
    Schedules,
    body_schema,
)
from jobs.spec import AepScheduleRequest, ScheduleRequest

schedules = APIRouter(prefix="/config/schedules")


@schedules.get("", responses=ERRORS, openapi_extra=TENANT, summary="List schedules, newest first")
def list_schedules_route(
    scope: Authorized,
    store: Schedules,
    limit: Annotated[int, Query(ge=1, le=1000, description="Schedules per page")] = 50,
    offset: Annotated[str | None, Query(
        pattern=r"^[0-9]+_[0-9a-f]+$",
        description="Cursor `{creationTime}_{id}` from `link.next`: the page after that schedule")] = None,
) -> JSONResponse:
    return JSONResponse(list_schedules(store, scope.org, scope.sandbox, limit, offset))


CREATE_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"anyOf": [
    body_schema(AepScheduleRequest)["requestBody"]["content"]["application/json"]["schema"],
    body_schema(ScheduleRequest)["requestBody"]["content"]["application/json"]["schema"]]}}}}}
PATCH_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "array", "minItems": 1, "description": "JSON Patch of /state (active, inactive) and /schedule (Quartz)",
    "items": {"type": "object", "required": ["op", "path", "value"], "properties": {
        "op": {"type": "string", "enum": ["replace", "add"]},
        "path": {"type": "string", "enum": ["/state", "/schedule"]}, "value": {"type": "string"}}}}}}}}


@schedules.post("", responses={**ERRORS, **BODY_ERRORS}, openapi_extra={**TENANT, **CREATE_BODY},
                summary="Create a schedule: {name, type, properties, schedule, state} (or {cron, incremental, job})")
async def create_schedule_route(scope: Authorized, config: Deployment, store: Schedules,
                                body: Body) -> JSONResponse:
    schedule = await run_in_threadpool(create_schedule, store, config, body, scope.org, scope.sandbox)
    return JSONResponse(schedule.to_dict())


@schedules.get("/{id}", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT, summary="Get a schedule")
def get_schedule(scope: Authorized, store: Schedules, id_: ScheduleId) -> JSONResponse:
    return JSONResponse(store.get(id_, scope.org, scope.sandbox).to_dict())


@schedules.get("/{id}/next-runs", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT,
               summary="When the schedule will next create a job (none while it is paused)")
def get_next_runs(
    scope: Authorized,
    store: Schedules,
    id_: ScheduleId,
    count: Annotated[int, Query(ge=1, le=50, description="How many of the next runs")] = 3,
) -> JSONResponse:
    return JSONResponse(next_runs(store, id_, scope.org, scope.sandbox, count))


@schedules.delete("/{id}", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT,
                  summary="Delete a schedule (its jobs stay)")
def delete_schedule(scope: Authorized, store: Schedules, id_: ScheduleId) -> JSONResponse:
    store.delete(id_, scope.org, scope.sandbox)
    return JSONResponse({"status": True, "message": "Schedule deleted"})


@schedules.patch("/{id}", responses={**ERRORS, **BODY_ERRORS, **NOT_FOUND}, openapi_extra={**TENANT, **PATCH_BODY},
                 summary="Pause, resume or reschedule: a JSON Patch of /state and /schedule")
def patch_schedule_route(scope: Authorized, store: Schedules, id_: ScheduleId, body: Body) -> JSONResponse:
    return JSONResponse(patch_schedule(store, id_, body, scope.org, scope.sandbox).to_dict())
