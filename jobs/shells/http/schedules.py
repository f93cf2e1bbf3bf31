"""/config/schedules: recurring exports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from jobs.control import create_schedule, list_schedules
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
from jobs.spec import ScheduleRequest

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


@schedules.post("", responses={**ERRORS, **BODY_ERRORS},
                openapi_extra={**TENANT, **body_schema(ScheduleRequest)},
                summary="Create a schedule: {cron, incremental, job}")
async def create_schedule_route(scope: Authorized, config: Deployment, store: Schedules,
                                body: Body) -> JSONResponse:
    schedule = await run_in_threadpool(create_schedule, store, config, body, scope.org, scope.sandbox)
    return JSONResponse(schedule.to_dict())


@schedules.get("/{id}", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT, summary="Get a schedule")
def get_schedule(scope: Authorized, store: Schedules, id_: ScheduleId) -> JSONResponse:
    return JSONResponse(store.get(id_, scope.org, scope.sandbox).to_dict())


@schedules.delete("/{id}", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT,
                  summary="Delete a schedule (its jobs stay)")
def delete_schedule(scope: Authorized, store: Schedules, id_: ScheduleId) -> JSONResponse:
    store.delete(id_, scope.org, scope.sandbox)
    return JSONResponse({"status": True, "message": "Schedule deleted"})
