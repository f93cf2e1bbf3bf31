"""The HTTP API (docs/reference/http-api.md): `/export/jobs`, `/segment/definitions`, `/config/schedules`,
`/segment/jobs`, `/privacy/jobs`, `/preview`, `/estimate` and `/webhooks/deliveries`, one tenant per bearer
token; and the web console on them at `/console` (jobs.shells.http.console).

Each resource is an `APIRouter` of plain handler functions in its own module;
`create_app` puts the deployment (config and stores) on `app.state`, where the
handlers' dependencies (jobs.shells.http.auth) find it. A request body is checked
by jobs.spec (not by FastAPI) so that its problems carry the same JSON paths as
the CLI's; jobs.shells.http.errors turns every error into a problem document.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG

from jobs.control import (
    DeliveryStore,
    JobStore,
    PreviewStore,
    PrivacyStore,
    ScheduleStore,
    SegmentStore,
    job_event_recorder,
    scrape_registry,
    table_sources,
)
from jobs.shells.http.console import console
from jobs.shells.http.errors import ANSWERS
from jobs.shells.http.health import probes
from jobs.shells.http.jobs import export_jobs
from jobs.shells.http.metrics import metrics
from jobs.shells.http.openapi import openapi_document
from jobs.shells.http.previews import previews
from jobs.shells.http.privacy_jobs import privacy_jobs
from jobs.shells.http.schedules import schedules
from jobs.shells.http.segment_jobs import segment_jobs
from jobs.shells.http.segments import segment_definitions
from jobs.shells.http.webhooks import webhooks
from jobs.spec import Config, LogFormat

log = logging.getLogger("export-jobs.api")


def create_app(config: Config, store: JobStore | None = None,
               runner_ready: Callable[[], bool] | None = None) -> FastAPI:
    """The API; `runner_ready` says whether `serve`'s runner of NEW jobs is up (/readyz), None without one."""
    if not config.tenants:
        log.warning("the config declares no [[tenants]]: every request will be refused (401)")
    app = FastAPI(
        title="Segment export jobs",
        version="1",
        description="Export audience segment members from a profile lake into Delta datasets.",
    )
    app.state.config = config
    app.state.jobs = store or JobStore(config.job_table_path, job_event_recorder(config))
    app.state.schedules = ScheduleStore(config.schedule_table_path)
    app.state.segments = SegmentStore(config.segment_table_path)
    app.state.privacy = PrivacyStore(config.privacy_table_path)
    app.state.previews = PreviewStore(config.preview_table_path)
    app.state.deliveries = DeliveryStore(config.webhook_table_path)
    app.state.runner_ready = runner_ready
    # GET /metrics: one more table's families are one more entry of these sources.
    app.state.metrics = scrape_registry(table_sources(app.state.jobs, app.state.privacy, app.state.previews,
                                                      app.state.schedules, app.state.deliveries))
    app.include_router(probes)
    app.include_router(metrics)
    app.include_router(export_jobs)
    app.include_router(segment_definitions)
    app.include_router(segment_jobs)
    app.include_router(schedules)
    app.include_router(privacy_jobs)
    app.include_router(previews)
    app.include_router(console)
    app.include_router(webhooks)
    for kind, answer in ANSWERS.items():
        app.add_exception_handler(kind, lambda _request, err, answer=answer: answer(err))
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def make_server(
    config: Config,
    host: str = "127.0.0.1",
    port: int = 8080,
    on_startup: Callable[[], None] | None = None,
    on_shutdown: Callable[[], None] | None = None,
    store: JobStore | None = None,
    log_level: str = "info",
    runner_ready: Callable[[], bool] | None = None,
    log_format: LogFormat = "text",
) -> uvicorn.Server:
    """A uvicorn server for the API; the hooks run when it starts and when it stops
    (e.g. to start and stop a background runner of NEW jobs, whose `ready` /readyz asks).
    `log_format` json: uvicorn's own logs, its access log too, go to the root logger's JSON lines
    (jobs.shells.logs) instead of uvicorn's text."""
    app = create_app(config, store, runner_ready)

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
    log_config = LOGGING_CONFIG if log_format == "text" else None
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, log_config=log_config))


def serve(
    config: Config,
    host: str = "127.0.0.1",
    port: int = 8080,
    on_startup: Callable[[], None] | None = None,
    on_shutdown: Callable[[], None] | None = None,
    runner_ready: Callable[[], bool] | None = None,
    log_format: LogFormat = "text",
) -> None:
    """Serve the API until interrupted (Ctrl-C or SIGTERM)."""
    make_server(config, host, port, on_startup, on_shutdown, runner_ready=runner_ready, log_format=log_format).run()


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
