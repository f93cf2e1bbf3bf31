"""/config/schedules: recurring exports."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from jobs.control import create_schedule
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


@schedules.get("", responses=ERRORS, openapi_extra=TENANT, summary="List schedules")
def list_schedules(scope: Authorized, store: Schedules) -> JSONResponse:
    return JSONResponse({"records": [s.to_dict() for s in store.list(scope.org, scope.sandbox)]})


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
