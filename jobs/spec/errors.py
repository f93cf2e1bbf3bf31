"""Every error a user is told about, and the problems of a rejected request.

`ExportJobsError` is the one base: each kind carries its `code` (as a failed job's
record shows it), the HTTP status the API answers with and the exit code the CLI
returns, so both shells read an error the same way. A rejected request lists every
`Problem` at once, each located by the JSON path of the bad value.
"""

from __future__ import annotations

import difflib
import json
import re
import typing
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

# The CLI's exit codes (docs/reference/cli.md#exit-codes): one per kind of failure, so that a script
# can tell a job that failed from a request it must fix, an id that does not exist, or our own bug.
EXIT_FAILED = 1  # a job that ended FAILED or CANCELLED
EXIT_USAGE = 2  # the command line itself (argparse's code), or an org or sandbox no tenant has
EXIT_REJECTED = 3  # a request that was refused (400): fix it and send it again
EXIT_NOT_FOUND = 4  # no such job, schedule or segment for this org and sandbox (404)
EXIT_CONFLICT = 5  # the resource's state does not allow it (409)
EXIT_LAKE = 6  # the lake does not match the config (422)
EXIT_CONFIG = 7  # the config file is missing or invalid
EXIT_UNAVAILABLE = 69  # something to fetch could not be had (sysexits' EX_UNAVAILABLE): setup-jars
EXIT_INTERNAL = 70  # a bug of ours (sysexits' EX_SOFTWARE): the log has the traceback
EXIT_TIMEOUT = 75  # `wait --timeout` ran out before the job finished (sysexits' EX_TEMPFAIL: try again)


class Problem(BaseModel):
    """One thing wrong with a request, located by its JSON path."""

    path: str
    message: str


class ProblemDocument(BaseModel):
    """An error answer: the HTTP API's body and the CLI's output (RFC 9457's fields, and `errors`)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[Problem]


def problem_document(status: int, detail: str, errors: Sequence[Problem] = ()) -> dict[str, Any]:
    return ProblemDocument(type="about:blank", title=HTTPStatus(status).phrase, status=status, detail=detail,
                           errors=list(errors)).model_dump()


class ExportJobsError(Exception):
    """The base of our errors: what went wrong, in words a user can act on."""

    code: ClassVar[str] = "EXPORT_FAILED"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = EXIT_INTERNAL

    def __init__(self, message: str, problems: Sequence[Problem] = ()):
        super().__init__(message)
        self.problems = list(problems)

    @property
    def detail(self) -> str:
        return str(self)

    def document(self) -> dict[str, Any]:
        """The problem document both shells answer with."""
        return problem_document(self.http_status, self.detail, self.problems)


class RequestRejected(ExportJobsError):
    """A request that cannot be accepted; `problems` says every reason. Nothing was written."""

    code = "BAD_REQUEST"
    http_status = 400
    exit_code = EXIT_REJECTED

    def __init__(self, problems: Sequence[Problem]):
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems), problems)

    @property
    def detail(self) -> str:
        return f"the request is invalid: {self}"

    @classmethod
    def at(cls, path: str, message: str) -> RequestRejected:
        return cls([Problem(path=path, message=message)])

    def under(self, prefix: str) -> RequestRejected:
        """The same problems, located inside the value at `prefix` (e.g. a schedule's `job`)."""
        return RequestRejected([Problem(path=f"{prefix}.{p.path}", message=p.message) for p in self.problems])


class NotFound(ExportJobsError):
    """No such resource in the tenant's org and sandbox."""

    code = "NOT_FOUND"
    http_status = 404
    exit_code = EXIT_NOT_FOUND


class Conflict(ExportJobsError):
    """The resource is not in a state that allows the change (it finished, changed meanwhile, or is used)."""

    code = "CONFLICT"
    http_status = 409
    exit_code = EXIT_CONFLICT


class LakeError(ExportJobsError):
    """The lake does not match the config (missing table, conflicting column types, a field gone)."""

    code = "INVALID_LAKE"
    http_status = 422
    exit_code = EXIT_LAKE

    def __init__(self, message: str):
        super().__init__(message, [Problem(path="$", message=message)])


class InputVersionGone(LakeError):
    """A table version a job read (and its retry or replay must read again) was removed by retention."""

    code = "INPUT_VERSION_GONE"


class ConfigError(ExportJobsError):
    """The configuration file is missing or wrong; the message says where."""

    code = "INVALID_CONFIG"
    exit_code = EXIT_CONFIG


class UsageError(ExportJobsError):
    """A command line that names something the deployment does not have (e.g. an org no tenant has)."""

    code = "USAGE"
    http_status = 400
    exit_code = EXIT_USAGE


class JobFailure(ExportJobsError):
    """A run that cannot finish, for a reason its record names with its own code."""

    exit_code = EXIT_FAILED


def json_path(loc: tuple[int | str, ...]) -> str:
    """('filter', 'segments', 0, 'segmentId') -> 'filter.segments[0].segmentId'."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "$"


# Pydantic puts validator tags such as 'function-before[...]' into error locations.
_INTERNAL_TAG = re.compile(r"^function-(before|after|wrap|plain)\[")


def problems_from(error: ValidationError, model: type[BaseModel] | None = None) -> list[Problem]:
    """Every problem of a request; an unknown key of `model` (or of a model inside it) comes with the
    closest key it has, if one is close."""
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(p for p in item["loc"] if isinstance(p, int) or not _INTERNAL_TAG.match(p))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key" + did_you_mean(str(loc[-1]), _keys_at(model, loc[:-1]) if model else [])
        problems.append(Problem(path=json_path(loc), message=message))
    return problems


def did_you_mean(given: str, known: Iterable[str]) -> str:
    """"; did you mean 'x'?" for the closest of `known`, or "" when none is close."""
    close = difflib.get_close_matches(given, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _keys_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys (aliases) of the model found at `loc` inside `model`, following nested models."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = next((f for name, f in current.model_fields.items() if (f.alias or name) == part), None)
        current = _model_in(field.annotation) if field is not None else None
    return [] if current is None else [f.alias or name for name, f in current.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, through Optional, lists and unions."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_in, typing.get_args(annotation)) if m is not None), None)


def json_value(body: str | bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise RequestRejected.at("$", f"body is not valid JSON: {err}") from None


def json_object(body: str | bytes) -> dict[str, Any]:
    value = json_value(body)
    if not isinstance(value, dict):
        raise RequestRejected.at("$", "body must be a JSON object")
    return value
