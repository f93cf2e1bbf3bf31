"""Every answer but a success is a problem document `{type, title, status, detail, errors[{path, message}]}`.

Our own errors (jobs.spec.ExportJobsError) carry their status; FastAPI's parameter
errors become 400s that name the parameter, routing errors keep their status, and
anything else is a 500 whose details stay in the server log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from jobs.spec import EXIT_REJECTED, ExportJobsError, Problem, json_path, problem_document

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ApiProblem(ExportJobsError):
    """A refusal that only HTTP has (token, headers, body size, media type), with its own `status`;
    `errors` are (path, message) pairs."""

    code = "REQUEST_REFUSED"
    http_status = 400
    exit_code = EXIT_REJECTED

    def __init__(self, status: int, detail: str, errors: Sequence[tuple[str, str]] = (),
                 headers: dict[str, str] | None = None):
        super().__init__(detail, [Problem(path=p, message=m) for p, m in errors])
        self.status, self.headers = status, headers


def problem(status: int, detail: str, errors: Sequence[Problem] = (),
            headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(problem_document(status, detail, errors), status, headers, media_type=PROBLEM_MEDIA_TYPE)


def _ours(err: ExportJobsError) -> JSONResponse:
    if isinstance(err, ApiProblem):
        return problem(err.status, err.detail, err.problems, err.headers)
    return problem(err.http_status, err.detail, err.problems)


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
    ExportJobsError: _ours,
    RecursionError: _too_deep,
    RequestValidationError: _invalid_parameters,
    # Routing errors (unknown path 404, method 405) keep their status and headers (Allow).
    HTTPException: lambda err: problem(err.status_code, str(err.detail), headers=err.headers),
    # Starlette re-raises after this answer, so the server still logs the traceback.
    Exception: lambda err: problem(500, "internal error; the server log has the details"),
}
