"""What a failed job's record says: an error code, a message a user can act on, and the call stack."""

from __future__ import annotations

import traceback

from jobs.engine import is_analysis_error, spark_message
from jobs.spec import ExportJobsError, JobError


def job_error(err: BaseException) -> JobError:
    """An error a user can act on, with the exception class and top frames for support."""
    stack = "".join(traceback.format_exception(type(err), err, err.__traceback__, limit=5))
    return JobError(code=_code(err), msg=_message(err), call_stack=stack[-4000:])


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
