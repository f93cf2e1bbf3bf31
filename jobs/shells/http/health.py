"""Probes for orchestrators (Kubernetes' liveness and readiness): no token, no tenant's data.

`/healthz` answers while the process serves at all. `/readyz` answers 200 once the job, schedule and
segment tables can be read and, when `serve` runs jobs, the runner's Spark session is up; else 503
with the checks that failed (details go to the server's log, not to an unauthenticated caller).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

log = logging.getLogger("export-jobs.api")
probes = APIRouter(tags=["probes"])


@probes.get("/healthz", summary="Liveness: the server answers")
def healthz() -> dict[str, str]:
    return {"status": "alive"}


@probes.get("/readyz", summary="Readiness: tables readable, the runner's session up", response_model=None,
            responses={503: {"description": "Not ready: `checks` says which check failed"}})
def readyz(request: Request) -> dict[str, Any] | JSONResponse:
    state = request.app.state
    checks: dict[str, str] = {}
    for name, table in (("jobTable", state.jobs), ("scheduleTable", state.schedules),
                        ("segmentTable", state.segments)):
        try:
            table.check()
            checks[name] = "ok"
        except Exception:
            log.exception("readiness: the %s cannot be read", name)
            checks[name] = "unreadable"
    runner = state.runner_ready
    checks["runner"] = "none (serve --no-runner)" if runner is None else ("ok" if runner() else "not ready")
    ready = all(v == "ok" or v.startswith("none") for v in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return body if ready else JSONResponse(body, status_code=503)
