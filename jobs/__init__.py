"""Segment export jobs on Spark and Delta Lake.

`from jobs import ExportJobs` is the Python API for notebooks and programs (jobs.shells.notebook,
docs/reference/python-api.md). It is loaded on use, so that the CLI's commands start without Spark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.shells import ExportJobs

__all__ = ["ExportJobs"]


def __getattr__(name: str) -> object:
    if name != "ExportJobs":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from jobs.shells import ExportJobs

    return ExportJobs
