"""`GET /metrics`: the deployment's tables and this process's runner in Prometheus' text format
(docs/reference/metrics.md).

Its numbers cover every tenant, so no tenant's token reads them: Prometheus sends the operators' scrape
token, whose SHA-256 is the config's `metricsTokenSha256`; without one configured, /metrics is off (404).
It is left out of the OpenAPI document, which describes what a tenant's token may call.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client.exposition import choose_encoder

from jobs.shells.http.auth import token_digest
from jobs.shells.http.errors import ApiProblem
from jobs.spec import Config

metrics = APIRouter(tags=["metrics"])
_scrape_token = HTTPBearer(scheme_name="ScrapeToken", auto_error=False)


def _scraper(request: Request,
             bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_scrape_token)]) -> None:
    config: Config = request.app.state.config
    if config.metrics_token_sha256 is None:
        raise ApiProblem(404, "/metrics is off: set metricsTokenSha256 in the config to the SHA-256 of a scrape "
                              "token, and have Prometheus send it as Authorization: Bearer TOKEN",
                         [("metricsTokenSha256", "not set")])
    if bearer is None:
        raise ApiProblem(401, "send the scrape token as Authorization: Bearer TOKEN",
                         [("Authorization", "missing, or not a Bearer token")], {"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(token_digest(bearer), config.metrics_token_sha256):
        raise ApiProblem(401, "the bearer token is not the scrape token (metricsTokenSha256); a tenant's token "
                              "does not read /metrics", [("Authorization", "not the scrape token")],
                         {"WWW-Authenticate": 'Bearer error="invalid_token"'})


@metrics.get("/metrics", include_in_schema=False, dependencies=[Depends(_scraper)])
def scrape(request: Request) -> Response:
    """The exposition format Prometheus asks for in Accept (text 0.0.4 by default, or OpenMetrics)."""
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(request.app.state.metrics), media_type=content_type)
