"""Small Delta tables of the control plane (jobs, segments, schedules), read and written with delta-rs.

The deltalake package (delta-rs) needs no JVM: reading and changing a row takes
milliseconds, and Spark and any other Delta reader can still read the tables.
Every change is a Delta commit; a commit that loses a race to another writer is
retried (`retry_commits`), and callers make their changes conditional so that a
retry never overwrites another writer's change.

Every change also rewrites the file that holds the row, so small files and files that
no version references any more pile up: `compact` merges the small ones (creates call
it now and then), and `maintain` (run by the runners between jobs, never on the request
path) also deletes what the retention no longer keeps (docs/operations.md#retention-of-the-control-tables).

Queries and conditional updates are SQL; their conditions are built here, from typed
values (`equal`, `one_of`, `all_of`, ...), and nowhere else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder, Schema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

RETRIES = 20
# Compaction merges files smaller than the target, once there are COMPACT_AFTER_FILES of them.
# A small target keeps writes cheap: a change rewrites the whole file that holds its row, so a
# job's every lease renewal would rewrite the whole table if it were compacted into one file.
COMPACT_AFTER_FILES = 50
COMPACT_TARGET_BYTES = 1 << 16
# Files only become removable once the retention has passed: looking more often gains little.
VACUUM_EVERY_SECONDS = 3600.0
T = TypeVar("T")


Value = str | int | bool | None


def literal(value: Value) -> str:
    """A SQL literal of a typed value: strings quoted, numbers as numbers, None as NULL."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    return "'" + value.replace("'", "''") + "'"


def equal(column: str, value: Value) -> str:
    return f"{column} IS NULL" if value is None else f"{column} = {literal(value)}"


def one_of(column: str, values: Iterable[Value]) -> str:
    return f"{column} IN ({', '.join(literal(v) for v in values)})"


def below(column: str, value: int) -> str:
    return f"{column} < {literal(value)}"


def all_of(*conditions: str | None) -> str:
    """The conjunction of the conditions given (None and empty ones left out); TRUE for none."""
    kept = [c for c in conditions if c]
    return " AND ".join(kept) if kept else "true"


def any_of(*conditions: str) -> str:
    return "(" + " OR ".join(conditions) + ")"


def tenant(org: str | None, sandbox: str | None) -> str:
    """The rows of one org and sandbox (either None: any)."""
    return all_of(equal("imsOrgId", org) if org is not None else None,
                  equal("sandboxName", sandbox) if sandbox is not None else None)


def before(created: int, key: str | int) -> str:
    """Rows after a page's last row, newest first: older, or as old with a smaller id."""
    return any_of(below("creationTime", created), all_of(equal("creationTime", created), f"id < {literal(key)}"))


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
    # The columns the code reads and writes: a table made by an older version gains the missing
    # ones (nullable, so its rows read as unset) the first time this handle opens it.
    SCHEMA: pa.Schema | None = None

    def __init__(self, path: str):
        self.path = path
        self._handle: DeltaTable | None = None
        self._lock = threading.RLock()
        self._vacuumed_at: float | None = None  # time.monotonic() of this handle's last vacuum

    def _table(self) -> DeltaTable | None:
        with self._lock:
            if self._handle is None:
                try:
                    self._handle = DeltaTable(self.path)
                except TableNotFoundError:
                    return None
                self._add_missing_columns(self._handle)
            else:
                self._handle.update_incremental()
            return self._handle

    def _add_missing_columns(self, table: DeltaTable) -> None:
        if self.SCHEMA is None:
            return
        for _ in range(RETRIES):
            have = set(table.schema().to_arrow().names)
            missing = [f for f in self.SCHEMA if f.name not in have]
            if not missing:
                return
            try:
                table.alter.add_columns(Schema.from_arrow(pa.schema(missing)).fields)
            except CommitFailedError:  # another process changed the table: look again
                table.update_incremental()

    def _update(self, updates: dict[str, str], predicate: str) -> int:
        """Rows changed by a conditional UPDATE (SQL expressions by column); 0 before the table exists."""

        def attempt() -> int:
            table = self._table()
            return 0 if table is None else table.update(updates=updates, predicate=predicate)["num_updated_rows"]

        with self._lock:
            return retry_commits(attempt)

    def check(self) -> None:
        """Brings the table up to date, raising what keeps it from being read (a readiness probe's
        question); a table not made yet is readable: its first write makes it."""
        self._table()

    def _query(self, sql: str) -> list[dict[str, Any]]:
        return self._queries(sql)[0]

    def _queries(self, *sql: str) -> list[list[dict[str, Any]]]:
        """The rows of each query, all of one version of the table."""
        with self._lock:
            table = self._table()
            if table is None:
                return [[] for _ in sql]
            builder = QueryBuilder().register(self.NAME, table)
            return [pa.table(builder.execute(query)).to_pylist() for query in sql]

    # -- maintenance: a lost race here is harmless, the next call tries again

    def compact(self) -> None:
        """Merge the table's small files once there are COMPACT_AFTER_FILES of them, and checkpoint."""
        with self._lock:
            table = self._table()
            if table is None:
                return
            sizes = table.get_add_actions(flatten=True).column("size_bytes").to_pylist()
            if sum(size < COMPACT_TARGET_BYTES for size in sizes) < COMPACT_AFTER_FILES:
                return
            try:
                table.optimize.compact(target_size=COMPACT_TARGET_BYTES)
                table.update_incremental()
                table.create_checkpoint()
            except (CommitFailedError, DeltaError):
                pass

    def vacuum(self, retention_hours: int) -> list[str]:
        """Delete the data files that no version of the last `retention_hours` references, and the
        log entries as old; returns the deleted files.

        The table's own retention properties are set to the same hours, so that its checkpoints
        stop carrying older removals and other engines' VACUUM keeps the same versions. A reader
        whose snapshot is older than the retention may lose files: the config keeps the
        retention at one hour or more (the tables' own readers refresh before every query).
        """
        interval = f"interval {retention_hours} hours"
        retention = {"delta.deletedFileRetentionDuration": interval, "delta.logRetentionDuration": interval}
        with self._lock:
            table = self._table()
            if table is None:
                return []
            try:
                if any(table.metadata().configuration.get(k) != v for k, v in retention.items()):
                    table.alter.set_table_properties(retention)
                # full: also files that no commit ever named (written by a writer killed before its commit).
                deleted = table.vacuum(retention_hours, dry_run=False, enforce_retention_duration=False, full=True)
                table.cleanup_metadata()
            except (CommitFailedError, DeltaError):
                return []
            self._vacuumed_at = time.monotonic()
            return deleted

    def maintain(self, retention_hours: int) -> None:
        """Between jobs: compact, and vacuum if this handle has not for VACUUM_EVERY_SECONDS."""
        self.compact()
        if self._vacuumed_at is None or time.monotonic() - self._vacuumed_at >= VACUUM_EVERY_SECONDS:
            self.vacuum(retention_hours)
