"""The HTTP API (README, "HTTP API"): `/export/jobs`, `/segment/definitions` and `/config/schedules`,
one tenant per bearer token.

Each resource is an `APIRouter` of plain handler functions; `create_app` puts the
deployment (config and stores) on `app.state`, where the handlers' dependencies
find it. Anything but a success is a problem document `{type, title, status,
detail, errors[{path, message}]}`. Bad input is always a 4xx: a request body is
checked by jobs.model (not by FastAPI) so that its problems carry the same JSON
paths as the CLI's, and FastAPI's own parameter errors are turned into 400s.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from jobs.config import Config
from jobs.definition_store import (
    DefinitionConflict,
    DefinitionNotFound,
    DefinitionStore,
    create_definition,
    delete_definition,
    list_definitions,
    update_definition,
)
from jobs.definition_store import decode_cursor as decode_definition_cursor
from jobs.definitions import DefinitionPatch, DefinitionRequest
from jobs.model import (
    JobDefinition,
    JobRecord,
    JobStatus,
    Problem,
    ProblemDocument,
    RequestRejected,
    json_path,
    problem_document,
)
from jobs.plan import LakeError
from jobs.schedules import ScheduleRequest, ScheduleStore, create_schedule
from jobs.service import cancel_job, create_job, decode_cursor, list_jobs, page_document
from jobs.store import JobNotFound, JobStore, StatusConflict

log = logging.getLogger("export-jobs.api")

MAX_BODY = 1 << 20
ORG_HEADER = "x-gw-ims-org-id"
SANDBOX_HEADER = "x-sandbox-name"
CANCELLING = {"status": True, "message": "Export job has been marked for cancelling"}
COMPONENTS = "#/components/schemas/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


# ---------------------------------------------------------------- documents


class PageInfo(BaseModel):
    sortField: str
    sort: str
    pageOffset: str | None
    pageSize: int


class PageLink(BaseModel):
    next: str | None = None


class JobPage(BaseModel):
    records: list[JobRecord]
    page: PageInfo
    link: PageLink


class CancelAnswer(BaseModel):
    status: bool
    message: str


class ApiProblem(Exception):
    """A refusal to answer with a problem document; `errors` are (path, message) pairs."""

    def __init__(self, status: int, detail: str, errors: Sequence[tuple[str, str]] = (),
                 headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers
        self.errors = [Problem(path=p, message=m) for p, m in errors]


def problem(status: int, detail: str, errors: Sequence[Problem] = (),
            headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(problem_document(status, detail, errors), status, headers, media_type=PROBLEM_MEDIA_TYPE)


# ---------------------------------------------------------------- dependencies


@dataclass(frozen=True)
class Scope:
    org: str
    sandbox: str


_bearer = HTTPBearer(scheme_name="BearerToken", auto_error=False,
                     description="A tenant's token; the config keeps its SHA-256.")
_api_key = APIKeyHeader(name="x-api-key", scheme_name="ApiKey", auto_error=False,
                        description="The client's API key (required, not checked).")


def tenant_scope(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Scope:
    """The one org and sandbox a request's headers may use."""
    if bearer is None:
        raise ApiProblem(401, "send the header Authorization: Bearer TOKEN",
                         [("Authorization", "missing, or not a Bearer token")], {"WWW-Authenticate": "Bearer"})
    if not api_key:
        raise ApiProblem(401, "send the header x-api-key", [("x-api-key", "missing")])
    # Starlette decodes headers as Latin-1, so this gives back the bytes the client sent.
    digest = hashlib.sha256(bearer.credentials.encode("latin-1")).hexdigest()
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
    return Scope(org, sandbox)


def _config(request: Request) -> Config:
    return request.app.state.config


def _jobs(request: Request) -> JobStore:
    return request.app.state.jobs


def _schedules(request: Request) -> ScheduleStore:
    return request.app.state.schedules


def _definitions(request: Request) -> DefinitionStore:
    return request.app.state.definitions


Authorized = Annotated[Scope, Depends(tenant_scope)]
Deployment = Annotated[Config, Depends(_config)]
Jobs = Annotated[JobStore, Depends(_jobs)]
Schedules = Annotated[ScheduleStore, Depends(_schedules)]
Definitions = Annotated[DefinitionStore, Depends(_definitions)]
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


# ---------------------------------------------------------------- /export/jobs


def _header(name: str, description: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required, "description": description,
            "schema": {"type": "string"}}


# Read by tenant_scope itself, so that a missing one is a 400 that names it (and
# comes after the 401s); declared here only to document them.
TENANT_HEADERS = [
    _header(ORG_HEADER, "The IMS org, which the token must hold."),
    _header(SANDBOX_HEADER, "A sandbox of that org, which the token must hold."),
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
    if offset:
        try:  # the pattern let it through, but int() refuses numbers of over 4300 digits
            decode_cursor(offset)
        except ValueError as err:
            raise ApiProblem(400, str(err), [("offset", str(err))]) from None
    records, next_offset = list_jobs(store, scope.org, scope.sandbox, limit, offset, status)
    return JSONResponse(page_document(records, limit, offset, next_offset, status))


@export_jobs.post(
    "",
    response_model=JobRecord,
    summary="Create an export job (answers its NEW record)",
    responses={**ERRORS, **BODY_ERRORS,
               422: {"model": ProblemDocument, "description": "The lake does not match the config"}},
    openapi_extra={
        "parameters": [*TENANT_HEADERS, _header("x-request-id", "Stored as the job's requestId", False)],
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
    return JSONResponse(store.get(id_, scope.org, scope.sandbox).to_dict())


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


# ---------------------------------------------------------------- /segment/definitions

segment_definitions = APIRouter(prefix="/segment/definitions")
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ProblemDocument, "description": "Changed meanwhile, or used by another definition's inSegment"},
}


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": model.model_json_schema(by_alias=True)}}}}


@segment_definitions.get("", responses=ERRORS, openapi_extra=TENANT, summary="List segment definitions, newest first")
def list_segment_definitions(
    scope: Authorized,
    store: Definitions,
    limit: Annotated[int, Query(ge=1, le=1000, description="Definitions per page")] = 50,
    offset: Annotated[str | None, Query(
        pattern=r"^[0-9]+_[0-9a-f-]+$",
        description="Cursor `{creationTime}_{id}` from `link.next`: the page after that definition")] = None,
) -> JSONResponse:
    if offset:
        try:
            decode_definition_cursor(offset)
        except ValueError as err:
            raise ApiProblem(400, str(err), [("offset", str(err))]) from None
    return JSONResponse(list_definitions(store, scope.org, scope.sandbox, limit, offset))


@segment_definitions.post("", responses={**ERRORS, **BODY_ERRORS, 422: {"model": ProblemDocument,
                                                                         "description": "The lake does not match "
                                                                                        "the config"}},
                          openapi_extra={**TENANT, **_body_schema(DefinitionRequest)},
                          summary="Create a segment definition (answers it with its id)")
async def create_segment_definition(scope: Authorized, config: Deployment, store: Definitions,
                                    body: Body) -> JSONResponse:
    created = await run_in_threadpool(create_definition, store, config, body, scope.org, scope.sandbox)
    return JSONResponse(created.to_dict())


@segment_definitions.get("/{id}", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT,
                         summary="Get a segment definition")
def get_segment_definition(scope: Authorized, store: Definitions, id_: DefinitionId) -> JSONResponse:
    return JSONResponse(store.get(id_, scope.org, scope.sandbox).to_dict())


@segment_definitions.patch("/{id}", responses={**ERRORS, **BODY_ERRORS, **NOT_FOUND, **CONFLICT},
                           openapi_extra={**TENANT, **_body_schema(DefinitionPatch)},
                           summary="Change a segment definition: name, description, expression, mergePolicyId")
async def update_segment_definition(scope: Authorized, config: Deployment, store: Definitions, id_: DefinitionId,
                                    body: Body) -> JSONResponse:
    updated = await run_in_threadpool(update_definition, store, config, id_, body, scope.org, scope.sandbox)
    return JSONResponse(updated.to_dict())


@segment_definitions.delete("/{id}", responses={**ERRORS, **NOT_FOUND, **CONFLICT}, openapi_extra=TENANT,
                            summary="Delete a segment definition that no other definition uses")
def delete_segment_definition(scope: Authorized, store: Definitions, id_: DefinitionId) -> JSONResponse:
    delete_definition(store, id_, scope.org, scope.sandbox)
    return JSONResponse({"status": True, "message": "Segment definition deleted"})


# ---------------------------------------------------------------- /config/schedules

schedules = APIRouter(prefix="/config/schedules")


@schedules.get("", responses=ERRORS, openapi_extra=TENANT, summary="List schedules")
def list_schedules(scope: Authorized, store: Schedules) -> JSONResponse:
    return JSONResponse({"records": [s.to_dict() for s in store.list(scope.org, scope.sandbox)]})


@schedules.post("", responses={**ERRORS, **BODY_ERRORS},
                openapi_extra={**TENANT, "requestBody": {"required": True, "content": {"application/json": {
                    "schema": ScheduleRequest.model_json_schema(by_alias=True)}}}},
                summary="Create a schedule: {cron, incremental, job}")
async def create_schedule_route(scope: Authorized, config: Deployment, store: Schedules,
                                body: Body) -> JSONResponse:
    schedule = await run_in_threadpool(create_schedule, store, config, body, scope.org, scope.sandbox)
    return JSONResponse(schedule.to_dict())


@schedules.get("/{id}", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT, summary="Get a schedule")
def get_schedule(scope: Authorized, store: Schedules, id_: ScheduleId) -> JSONResponse:
    found = store.get(id_, scope.org, scope.sandbox)
    if found is None:
        raise ApiProblem(404, f"no schedule {id_}")
    return JSONResponse(found.to_dict())


@schedules.delete("/{id}", responses={**ERRORS, **NOT_FOUND}, openapi_extra=TENANT,
                  summary="Delete a schedule (its jobs stay)")
def delete_schedule(scope: Authorized, store: Schedules, id_: ScheduleId) -> JSONResponse:
    if not store.delete(id_, scope.org, scope.sandbox):
        raise ApiProblem(404, f"no schedule {id_}")
    return JSONResponse({"status": True, "message": "Schedule deleted"})


# ---------------------------------------------------------------- errors


def _invalid_parameters(err: RequestValidationError) -> JSONResponse:
    problems, details = [], []
    for item in err.errors():
        where, *loc = item["loc"]  # ("query", "limit"), ("path", "id"), …
        path = json_path(tuple(loc))
        problems.append(Problem(path=path, message=item["msg"]))
        details.append(f"{where} parameter {path}: {item['msg']}")
    return problem(400, "; ".join(details) or "invalid request", problems)


def _too_deep(_err: RecursionError) -> JSONResponse:
    """Python's JSON parser and pydantic give up on very deep nesting."""
    return problem(400, "the body is nested too deeply", [Problem(path="$", message="nested too deeply")])


# Each exception a handler may raise, and its answer.
ANSWERS: dict[type[Exception], Callable[[Any], JSONResponse]] = {
    ApiProblem: lambda err: problem(err.status, err.detail, err.errors, err.headers),
    RequestRejected: lambda err: problem(400, "the request is invalid: each problem is in errors", err.problems),
    RecursionError: _too_deep,
    JobNotFound: lambda err: problem(404, str(err)),
    DefinitionNotFound: lambda err: problem(404, str(err)),
    DefinitionConflict: lambda err: problem(409, str(err)),
    StatusConflict: lambda err: problem(409, f"{err}: it cannot be cancelled any more"),
    LakeError: lambda err: problem(422, str(err), [Problem(path="$", message=str(err))]),
    RequestValidationError: _invalid_parameters,
    # Routing errors (unknown path 404, method 405) keep their status and headers (Allow).
    HTTPException: lambda err: problem(err.status_code, str(err.detail), headers=err.headers),
    # Starlette re-raises after this answer, so the server still logs the traceback.
    Exception: lambda err: problem(500, "internal error; the server log has the details"),
}


# ---------------------------------------------------------------- the application


def create_app(config: Config, store: JobStore | None = None) -> FastAPI:
    if not config.tenants:
        log.warning("the config declares no [[tenants]]: every request will be refused (401)")
    app = FastAPI(
        title="Segment export jobs",
        version="1",
        description="Export audience segment members from a profile lake into Delta datasets.",
    )
    app.state.config = config
    app.state.jobs = store or JobStore(config.job_table_path)
    app.state.schedules = ScheduleStore(config.schedule_table_path)
    app.state.definitions = DefinitionStore(config.segment_table_path)
    app.include_router(export_jobs)
    app.include_router(segment_definitions)
    app.include_router(schedules)
    for kind, answer in ANSWERS.items():
        app.add_exception_handler(kind, lambda _request, err, answer=answer: answer(err))
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def example_job(config: Config) -> dict[str, Any]:
    """A job definition this deployment accepts: every profile of a segment, all fields."""
    destination = config.destination_datasets[0]
    return {
        "filter": {"segments": [{"segmentId": "segment-01", "segmentNs": "ups", "status": ["realized"]}]},
        "destination": {"datasetId": destination.id, "segmentPerBatch": False},
        "schema": {"name": destination.schema_name},
    }


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the JobDefinition schema the POST body is checked against,
    this deployment's examples, and problem documents for every error."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = doc["components"]["schemas"]
        definition = JobDefinition.model_json_schema(by_alias=True, ref_template=COMPONENTS + "{model}")
        schemas.update(definition.pop("$defs", {}))
        schemas["JobDefinition"] = definition
        example = example_job(app.state.config)
        examples = {"/export/jobs": example, "/config/schedules": {"cron": "0 * * * *", "incremental": True,
                                                                   "job": example}}
        for path, body in examples.items():
            doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"] = body
        # Parameter errors are 400 problem documents here, never FastAPI's 422 HTTPValidationError.
        for operation in (op for item in doc["paths"].values() for op in item.values()):
            # FastAPI lists each security dependency as an alternative; both are required.
            operation["security"] = [{k: v for req in operation["security"] for k, v in req.items()}]
            responses = operation["responses"]
            if "HTTPValidationError" in str(responses.get("422")):
                del responses["422"]
            for code, response in responses.items():
                if int(code) >= 400:
                    response["content"] = {PROBLEM_MEDIA_TYPE: response["content"]["application/json"]}
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = doc
    return app.openapi_schema


# ---------------------------------------------------------------- serving


def make_server(
    config: Config,
    host: str = "127.0.0.1",
    port: int = 8080,
    on_startup: Callable[[], None] | None = None,
    on_shutdown: Callable[[], None] | None = None,
    store: JobStore | None = None,
    log_level: str = "info",
) -> uvicorn.Server:
    """A uvicorn server for the API; the hooks run when it starts and when it stops
    (e.g. to start and stop a background runner of NEW jobs)."""
    app = create_app(config, store)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if on_startup:
            on_startup()
        try:
            yield
        finally:
            if on_shutdown:
                on_shutdown()

    app.router.lifespan_context = lifespan
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level))


def serve(
    config: Config,
    host: str = "127.0.0.1",
    port: int = 8080,
    on_startup: Callable[[], None] | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> None:
    """Serve the API until interrupted (Ctrl-C or SIGTERM)."""
    make_server(config, host, port, on_startup, on_shutdown).run()


@contextmanager
def running(server: uvicorn.Server, timeout: float = 30.0) -> Iterator[str]:
    """Run `server` in a background thread (for tests and benchmarks); yields its base URL.

    Give it port 0 to have the system pick a free port.
    """
    thread = threading.Thread(target=server.run, name="export-jobs-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
