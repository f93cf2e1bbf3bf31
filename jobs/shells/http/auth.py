"""What every route depends on: the tenant a request's token and headers name, the deployment's stores,
and a JSON body read with limits."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from jobs.control import DeliveryStore, JobStore, PreviewStore, PrivacyStore, ScheduleStore, SegmentStore
from jobs.shells.http.errors import ApiProblem
from jobs.spec import Config, ProblemDocument

MAX_BODY = 1 << 20
ORG_HEADER = "x-gw-ims-org-id"
SANDBOX_HEADER = "x-sandbox-name"
COMPONENTS = "#/components/schemas/"


@dataclass(frozen=True)
class TenantScope:
    org: str
    sandbox: str


_bearer = HTTPBearer(scheme_name="BearerToken", auto_error=False,
                     description="A tenant's token; the config keeps its SHA-256.")
_api_key = APIKeyHeader(name="x-api-key", scheme_name="ApiKey", auto_error=False,
                        description="The client's API key (required, not checked).")


def token_digest(bearer: HTTPAuthorizationCredentials) -> str:
    """The SHA-256 of a bearer token, as the config holds tokens. Starlette decodes headers as Latin-1, so
    encoding it back gives the bytes the client sent."""
    return hashlib.sha256(bearer.credentials.encode("latin-1")).hexdigest()


def tenant_scope(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> TenantScope:
    """The one org and sandbox a request's headers may use."""
    if bearer is None:
        raise ApiProblem(401, "send the header Authorization: Bearer TOKEN",
                         [("Authorization", "missing, or not a Bearer token")], {"WWW-Authenticate": "Bearer"})
    if not api_key:
        raise ApiProblem(401, "send the header x-api-key", [("x-api-key", "missing")])
    digest = token_digest(bearer)
    # Every tenant is compared, in constant time, so timing tells nothing about the tokens.
    config: Config = request.app.state.config
    tenants = [t for t in config.tenants if hmac.compare_digest(t.token_sha256, digest)]
    if not tenants:
        raise ApiProblem(401, "the bearer token is not valid", [("Authorization", "unknown token")],
                         {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    org, sandbox = request.headers.get(ORG_HEADER), request.headers.get(SANDBOX_HEADER)
    if not org or not sandbox:
        missing = [name for name, value in ((ORG_HEADER, org), (SANDBOX_HEADER, sandbox)) if not value]
        raise ApiProblem(400, f"send the header {' and '.join(missing)}",
                         [(name, "missing header") for name in missing])
    tenant = next((t for t in tenants if t.org == org), None)
    if tenant is None:
        raise ApiProblem(403, f"the token does not give access to org {org!r}",
                         [(ORG_HEADER, "not this token's org")])
    if sandbox not in tenant.sandboxes:
        raise ApiProblem(403, f"the token does not give access to sandbox {sandbox!r} of org {org!r}",
                         [(SANDBOX_HEADER, "not one of this token's sandboxes")])
    return TenantScope(org, sandbox)


def _config(request: Request) -> Config:
    return request.app.state.config


def _jobs(request: Request) -> JobStore:
    return request.app.state.jobs


def _schedules(request: Request) -> ScheduleStore:
    return request.app.state.schedules


def _segments(request: Request) -> SegmentStore:
    return request.app.state.segments


def _privacy(request: Request) -> PrivacyStore:
    return request.app.state.privacy


def _previews(request: Request) -> PreviewStore:
    return request.app.state.previews


def _deliveries(request: Request) -> DeliveryStore:
    return request.app.state.deliveries


Authorized = Annotated[TenantScope, Depends(tenant_scope)]
Deployment = Annotated[Config, Depends(_config)]
Jobs = Annotated[JobStore, Depends(_jobs)]
Schedules = Annotated[ScheduleStore, Depends(_schedules)]
Segments = Annotated[SegmentStore, Depends(_segments)]
PrivacyJobs = Annotated[PrivacyStore, Depends(_privacy)]
Previews = Annotated[PreviewStore, Depends(_previews)]
Deliveries = Annotated[DeliveryStore, Depends(_deliveries)]
PreviewId = Annotated[str, Path(alias="previewId", pattern=r"^[0-9a-f]{32}$", description="The preview's id")]
PrivacyJobId = Annotated[str, Path(alias="jobId", description="The privacy job's id")]
DefinitionId = Annotated[str, Path(alias="id", description="The segment definition's id")]
JobId = Annotated[int, Path(alias="id", description="The job's id")]
ScheduleId = Annotated[str, Path(alias="id", description="The schedule's id")]


async def json_body(request: Request) -> bytes:
    """The raw body, refused before it is read whole when it is too large or not JSON."""
    content_type = request.headers.get("content-type")
    if content_type is not None:
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise ApiProblem(415, f"send a JSON body with Content-Type: application/json, not {media_type!r}",
                             [("Content-Type", "not application/json")])
    too_large = ApiProblem(413, f"the body is larger than {MAX_BODY} bytes", [("$", "too large")])
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():  # a chunked body has no Content-Length to trust
        body += chunk
        if len(body) > MAX_BODY:
            raise too_large
    return bytes(body)


Body = Annotated[bytes, Depends(json_body)]


def header(name: str, description: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required, "description": description,
            "schema": {"type": "string"}}


# Read by tenant_scope itself, so that a missing one is a 400 that names it (and
# comes after the 401s); declared here only to document them.
TENANT_HEADERS = [
    header(ORG_HEADER, "The IMS org, which the token must hold."),
    header(SANDBOX_HEADER, "A sandbox of that org, which the token must hold."),
]
TENANT = {"parameters": TENANT_HEADERS}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ProblemDocument, "description": "Bad request: `errors` names each bad field or parameter"},
    401: {"model": ProblemDocument, "description": "Missing or unknown token, or no x-api-key"},
    403: {"model": ProblemDocument, "description": "The token does not hold this org or sandbox"},
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ProblemDocument, "description": f"Body larger than {MAX_BODY} bytes"},
    415: {"model": ProblemDocument, "description": "Body is not JSON"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemDocument, "description": "Not found in this org and sandbox"},
}


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI's requestBody for a body that jobs.spec checks (FastAPI does not read it)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": model.model_json_schema(by_alias=True)}}}}
