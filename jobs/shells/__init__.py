"""The shells: how people and schedulers reach the product (the CLI, spark-submit's entry point, and
the HTTP API in jobs.shells.http, which loads FastAPI only when it is imported)."""

from __future__ import annotations

from jobs.shells.cli import main
from jobs.shells.logs import setup_logging

__all__ = ["main", "setup_logging"]
