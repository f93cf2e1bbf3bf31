"""What a failed job's record says: an error code, a message a user can act on, and the call stack."""

from __future__ import annotations

from jobs.engine import is_analysis_error, spark_message
from jobs.spec import ExportJobsError, JobError


def job_error(err: BaseException, lake_root: str) -> JobError:
    """An error a user can act on, with no internals of the server: its `callStack` names the
    exception's class only (the frames, which hold the server's file paths, go to the runner's log),
    and the lake's absolute path in a message (Spark's, e.g. "Path does not exist") reads `lakeRoot`."""
    message = _message(err).replace(lake_root.rstrip("/"), "lakeRoot")
    return JobError(code=_code(err), msg=message, call_stack=f"{type(err).__module__}.{type(err).__qualname__}")


def _code(err: BaseException) -> str:
    if isinstance(err, ExportJobsError):
        return err.code
    return "SPARK_ANALYSIS" if is_analysis_error(err) else "EXPORT_FAILED"


def _message(err: BaseException) -> str:
    if isinstance(err, ExportJobsError):
        return str(err)[:2000]
    full = spark_message(err).strip()
    text = full.splitlines()[0] if full else type(err).__name__
    return f"{type(err).__name__}: {text}"[:2000]
