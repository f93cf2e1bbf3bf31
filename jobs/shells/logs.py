"""Logging for the entry points: progress and logs on stderr, so that stdout carries only results; as
lines of text, or one JSON object per line for a log collector (`--log-format json`, `logFormat`;
docs/reference/metrics.md#json-logs)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from jobs.control import running_job
from jobs.spec import LogFormat

TEXT_FORMAT = "%(asctime)s %(name)s %(message)s"
HANDLER_NAME = "export-jobs"
# uvicorn's access log gives these as its message's arguments (uvicorn.protocols.http).
ACCESS_LOGGER = "uvicorn.access"
ACCESS_FIELDS = ("client", "method", "path", "httpVersion", "status")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message; the job's id when the
    record names one (`extra={"job_id": ...}`) or the thread runs one (jobs.control.running_job); the
    request of an access log line; the exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None) or running_job.get()
        if job_id is not None:
            line["jobId"] = job_id
        if record.name == ACCESS_LOGGER and isinstance(record.args, tuple) and len(record.args) == len(ACCESS_FIELDS):
            line.update(zip(ACCESS_FIELDS, record.args, strict=True))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def setup_logging(log_format: LogFormat = "text") -> None:
    """Logs of INFO and above on stderr, as `log_format` says. Called again (once the config's logFormat is
    known), it changes how the lines that follow are written. Logging that something else set up first (a
    host application, pytest) is left as it is."""
    root = logging.getLogger()
    ours = next((h for h in root.handlers if h.get_name() == HANDLER_NAME), None)
    if ours is None:
        if root.handlers:
            return
        ours = logging.StreamHandler(sys.stderr)
        ours.set_name(HANDLER_NAME)
        root.addHandler(ours)
        root.setLevel(logging.INFO)
    ours.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.getLogger("py4j").setLevel(logging.WARNING)
