"""The shells: how people and schedulers reach the product (the CLI, spark-submit's entry point, the
Python API in jobs.shells.notebook, and the HTTP API in jobs.shells.http, which loads FastAPI only when it
is imported). The Python API loads on use: it brings the engine, and the CLI starts without it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.shells.cli import main
from jobs.shells.logs import setup_logging

if TYPE_CHECKING:
    from jobs.shells.notebook import ExportJobs

__all__ = ["ExportJobs", "main", "setup_logging"]


def __getattr__(name: str) -> object:
    if name != "ExportJobs":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from jobs.shells.notebook import ExportJobs

    return ExportJobs
