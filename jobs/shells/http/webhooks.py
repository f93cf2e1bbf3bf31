"""/webhooks/deliveries: the tenant's webhook delivery log (docs/reference/webhooks.md#the-delivery-log)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from jobs.control import DeliveryStatus
from jobs.shells.http.auth import ERRORS, TENANT, Authorized, Deliveries

webhooks = APIRouter(prefix="/webhooks")


@webhooks.get("/deliveries", responses=ERRORS, openapi_extra=TENANT,
              summary="List the tenant's webhook deliveries, newest first")
def list_deliveries(
    scope: Authorized,
    store: Deliveries,
    limit: Annotated[int, Query(ge=1, le=1000, description="Deliveries to list")] = 50,
    status: Annotated[DeliveryStatus | None, Query(description="Only deliveries with this status")] = None,
) -> JSONResponse:
    return JSONResponse({"deliveries": store.list(scope.org, scope.sandbox, status, limit)})
