"""Small Delta tables of the control plane (jobs, schedules), read and written with delta-rs.

The deltalake package (delta-rs) needs no JVM: reading and changing a row takes
milliseconds, and Spark and any other Delta reader can still read the tables.
Every change is a Delta commit; a commit that loses a race to another writer is
retried (`retry_commits`), and callers make their changes conditional so that a
retry never overwrites another writer's change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder
from deltalake.exceptions import CommitFailedError, TableNotFoundError

RETRIES = 20
T = TypeVar("T")


def sql_text(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def retry_commits(action: Callable[[], T]) -> T:
    """Run a Delta write again while it loses commit races to other writers."""
    for attempt in range(RETRIES):
        try:
            return action()
        except CommitFailedError:
            time.sleep(0.01 * (attempt + 1))
    return action()


class DeltaRows:
    """A small Delta table read with SQL and changed by conditional commits.

    Thread-safe: one open table handle, brought up to date before each use
    (opening a table costs milliseconds; catching up on new commits, well under one).
    """

    NAME = "rows"  # the table's name in SQL queries

    def __init__(self, path: str):
        self.path = path
        self._handle: DeltaTable | None = None
        self._lock = threading.RLock()

    def _table(self) -> DeltaTable | None:
        with self._lock:
            if self._handle is None:
                try:
                    self._handle = DeltaTable(self.path)
                except TableNotFoundError:
                    return None
            else:
                self._handle.update_incremental()
            return self._handle

    def _update(self, updates: dict[str, str], predicate: str) -> int:
        """Rows changed by a conditional UPDATE (SQL expressions by column); 0 before the table exists."""

        def attempt() -> int:
            table = self._table()
            return 0 if table is None else table.update(updates=updates, predicate=predicate)["num_updated_rows"]

        with self._lock:
            return retry_commits(attempt)

    def _query(self, sql: str) -> list[dict[str, Any]]:
        with self._lock:
            table = self._table()
            if table is None:
                return []
            return pa.table(QueryBuilder().register(self.NAME, table).execute(sql)).to_pylist()
