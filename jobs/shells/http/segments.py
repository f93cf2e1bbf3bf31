"""/segment/definitions: segment definitions in PQL, created, listed, changed and deleted."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from jobs.control import (
    create_segment,
    delete_segment,
    evaluations_of,
    list_segments,
    update_segment,
    validate_expression,
)
from jobs.shells.http.auth import (
    BODY_ERRORS,
    ERRORS,
    NOT_FOUND,
    TENANT,
    Authorized,
    Body,
    DefinitionId,
    Deployment,
    Jobs,
    Schedules,
    Segments,
    body_schema,
)
from jobs.spec import ExpressionCheck, ExpressionVerdict, ProblemDocument, SegmentPatch, SegmentRequest

segment_definitions = APIRouter(prefix="/segment/definitions")
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ProblemDocument, "description": "Changed meanwhile, or used by another definition's inSegment, "
                                                 "a schedule or an unfinished job"},
}


@segment_definitions.get("", responses=ERRORS, openapi_extra=TENANT, summary="List segment definitions, newest first")
def list_segment_definitions(
    scope: Authorized,
    store: Segments,
    limit: Annotated[int, Query(ge=1, le=1000, description="Definitions per page")] = 50,
    offset: Annotated[str | None, Query(
        pattern=r"^[0-9]+_[0-9a-f-]+$",
        description="Cursor `{creationTime}_{id}` from `link.next`: the page after that definition")] = None,
) -> JSONResponse:
    return JSONResponse(list_segments(store, scope.org, scope.sandbox, limit, offset))


@segment_definitions.post("", responses={**ERRORS, **BODY_ERRORS, 422: {"model": ProblemDocument,
                                                                         "description": "The lake does not match "
                                                                                        "the config"}},
                          openapi_extra={**TENANT, **body_schema(SegmentRequest)},
                          summary="Create a segment definition (answers it with its id)")
async def create_segment_definition(scope: Authorized, config: Deployment, store: Segments,
                                    body: Body) -> JSONResponse:
    created = await run_in_threadpool(create_segment, store, config, body, scope.org, scope.sandbox)
    return JSONResponse(created.to_dict())


@segment_definitions.post("/validate", response_model=ExpressionVerdict, responses={**ERRORS, **BODY_ERRORS},
                          openapi_extra={**TENANT, **body_schema(ExpressionCheck)},
                          summary="Check an expression as a definition's would be, without storing it",
                          description="`valid`, and the expression's problem at its `line` and `column` (1-based) "
                                      "and `offset` (0-based) with its `length`. A bad body or an unknown "
                                      "`mergePolicyId` is a 400.")
async def validate_segment_expression(scope: Authorized, config: Deployment, store: Segments,
                                      body: Body) -> JSONResponse:
    verdict = await run_in_threadpool(validate_expression, store, config, body, scope.org, scope.sandbox)
    return JSONResponse(verdict.to_dict())


@segment_definitions.get("/{id}", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT,
                         summary="Get a segment definition")
def get_segment_definition(scope: Authorized, store: Segments, id_: DefinitionId) -> JSONResponse:
    return JSONResponse(store.get(id_, scope.org, scope.sandbox).to_dict())


@segment_definitions.patch("/{id}", responses={**ERRORS, **BODY_ERRORS, **NOT_FOUND, **CONFLICT},
                           openapi_extra={**TENANT, **body_schema(SegmentPatch)},
                           summary="Change a segment definition: name, description, expression, mergePolicyId")
async def update_segment_definition(scope: Authorized, config: Deployment, store: Segments, id_: DefinitionId,
                                    body: Body) -> JSONResponse:
    updated = await run_in_threadpool(update_segment, store, config, id_, body, scope.org, scope.sandbox)
    return JSONResponse(updated.to_dict())


@segment_definitions.delete("/{id}", responses={**ERRORS, **NOT_FOUND, **CONFLICT}, openapi_extra=TENANT,
                            summary="Delete a segment definition that no other definition, schedule or "
                                    "unfinished job uses")
def delete_segment_definition(scope: Authorized, store: Segments, schedules: Schedules, jobs: Jobs,
                              id_: DefinitionId) -> JSONResponse:
    delete_segment(store, id_, scope.org, scope.sandbox,
                   evaluations_of(id_, schedules, jobs, scope.org, scope.sandbox))
    return JSONResponse({"status": True, "message": "Segment definition deleted"})
