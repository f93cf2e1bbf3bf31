"""/preview and /estimate: a PQL expression evaluated on a sample of the lake, in AEP's shape
(docs/reference/segments.md#previews-and-estimates)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from jobs.control import create_preview, estimate_document, preview_page
from jobs.shells.http.auth import (
    BODY_ERRORS,
    ERRORS,
    NOT_FOUND,
    TENANT,
    Authorized,
    Body,
    Deployment,
    PreviewId,
    Previews,
    body_schema,
)
from jobs.spec import PreviewRequest

previews = APIRouter()


@previews.post("/preview", responses={**ERRORS, **BODY_ERRORS}, openapi_extra={**TENANT, **body_schema(PreviewRequest)},
               summary="Create a preview and its estimate: the expression is evaluated on a sample, in the background")
async def create_preview_route(scope: Authorized, config: Deployment, store: Previews, body: Body) -> JSONResponse:
    preview = await run_in_threadpool(create_preview, store, config, body, scope.org, scope.sandbox)
    return JSONResponse({"previewId": preview.preview_id, "state": preview.state.value,
                         "mergeStrategy": preview.merge_strategy, "graphType": preview.graph_type})


@previews.get("/preview/{previewId}", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT,
              summary="A page of the sample's matching profiles")
def get_preview(
    scope: Authorized,
    store: Previews,
    preview_id: PreviewId,
    limit: Annotated[int, Query(ge=1, le=1000, description="Profiles per page")] = 50,
    offset: Annotated[int, Query(ge=0, description="Profiles to skip, from `links.next`")] = 0,
) -> JSONResponse:
    return JSONResponse(preview_page(store.get(preview_id, scope.org, scope.sandbox), limit, offset))


@previews.delete("/preview/{previewId}", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT,
                 summary="Delete a preview and its estimate")
def delete_preview(scope: Authorized, store: Previews, preview_id: PreviewId) -> JSONResponse:
    store.delete(preview_id, scope.org, scope.sandbox)
    return JSONResponse({"status": True, "message": f"preview {preview_id} deleted"})


@previews.get("/estimate/{previewId}", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT,
              summary="The estimate of a preview: size, confidence interval, standard error, how it was sampled")
def get_estimate(scope: Authorized, store: Previews, preview_id: PreviewId) -> JSONResponse:
    return JSONResponse(estimate_document(store.get(preview_id, scope.org, scope.sandbox)))
