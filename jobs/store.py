"""The job table (SPEC §7): one Delta table, one current row per job.

It is read and written with the deltalake package (delta-rs), not Spark, so that
creating, reading and listing jobs needs no JVM and takes milliseconds. Spark
and any other Delta reader can still read it. Every change is a conditional
Delta commit (`UPDATE … WHERE id = … AND status IN …`); a commit that loses a
race to another writer is retried, and a condition that no longer holds is
reported to the caller instead of overwriting the other writer's change.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from jobs.model import JobRecord, JobStatus

SCHEMA = pa.schema([
    ("id", pa.int64()),
    ("imsOrgId", pa.string()),
    ("sandboxName", pa.string()),
    ("status", pa.string()),
    ("creationTime", pa.int64()),
    ("updateTime", pa.int64()),
    ("record", pa.string()),
    # The runner holding a PROCESSING or CANCELLING job, and until when (epoch ms).
    ("runner", pa.string()),
    ("leaseUntil", pa.int64()),
])
RETRIES = 20
# Checkpoints keep opening and catching up cheap; compaction (maintain(), run by the
# runners between jobs, not on the request path) keeps reads to a few files.
CHECKPOINT_EVERY = 10
COMPACT_AFTER_FILES = 50


class JobNotFound(Exception):
    pass


@dataclass(frozen=True)
class Lease:
    """What a conditional write sets and requires of the job's runner columns.

    `holder`: the runner that must hold the job (None: no requirement);
    `runner`/`until`: the new holder and expiry (runner None clears the lease).
    """

    runner: str | None
    until: int | None
    holder: str | None = None


class StatusConflict(Exception):
    """The job is not in a status that allows the change."""

    def __init__(self, job_id: int, status: str, wanted: Iterable[JobStatus]):
        self.status = status
        allowed = ", ".join(s.value for s in wanted)
        super().__init__(f"job {job_id} is {status}, not {allowed}")


def sql_text(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def retry_commits(action: Callable[[], object]):
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

    def _query(self, sql: str) -> list[dict]:
        with self._lock:
            table = self._table()
            if table is None:
                return []
            return pa.table(QueryBuilder().register(self.NAME, table).execute(sql)).to_pylist()


class JobStore(DeltaRows):
    NAME = "jobs"

    # -- reads

    def get(self, job_id: int, org: str | None = None, sandbox: str | None = None) -> JobRecord:
        where = f"id = {int(job_id)}"
        if org is not None:
            where += f" AND imsOrgId = {sql_text(org)}"
        if sandbox is not None:
            where += f" AND sandboxName = {sql_text(sandbox)}"
        rows = self._query(f"SELECT record FROM jobs WHERE {where}")
        if not rows:
            raise JobNotFound(f"no export job {job_id}")
        return JobRecord.model_validate_json(rows[0]["record"])

    def list(
        self,
        org: str,
        sandbox: str,
        limit: int = 50,
        before: tuple[int, int] | None = None,
        status: JobStatus | None = None,
    ) -> list[JobRecord]:
        """Newest first; `before` is the (creationTime, id) of the last job already seen."""
        where = f"imsOrgId = {sql_text(org)} AND sandboxName = {sql_text(sandbox)}"
        if status is not None:
            where += f" AND status = {sql_text(status.value)}"
        if before is not None:
            created, job_id = before
            where += f" AND (creationTime < {created} OR (creationTime = {created} AND id < {job_id}))"
        rows = self._query(
            f"SELECT record FROM jobs WHERE {where} ORDER BY creationTime DESC, id DESC LIMIT {int(limit)}"
        )
        return [JobRecord.model_validate_json(r["record"]) for r in rows]

    def ids_with_status(self, status: JobStatus) -> list[int]:
        rows = self._query(f"SELECT id FROM jobs WHERE status = {sql_text(status.value)} ORDER BY id")
        return [r["id"] for r in rows]

    def expired_leases(self, now: int) -> list[dict]:
        """Running jobs whose runner stopped renewing: id, status, runner, leaseUntil."""
        return self._query(
            "SELECT id, status, runner, leaseUntil FROM jobs "
            f"WHERE status IN ('PROCESSING', 'CANCELLING') AND leaseUntil < {int(now)} ORDER BY id"
        )

    # -- writes

    def create(self, build: Callable[[int], JobRecord]) -> JobRecord:
        """Store the record `build(id)` under the next free id."""

        def attempt() -> JobRecord | None:
            rows = self._query("SELECT max(id) AS top FROM jobs")
            job_id = (rows[0]["top"] or 0) + 1 if rows else 1
            record = build(job_id)
            source = pa.Table.from_pylist([_row(record)], schema=SCHEMA)
            table = self._table()
            if table is None:
                try:
                    write_deltalake(self.path, source, mode="error",
                                    configuration={"delta.checkpointInterval": str(CHECKPOINT_EVERY)})
                    return record
                except DeltaError:  # another creator made the table first: try again
                    if self._table() is None:
                        raise
                    return None
            result = (
                table.merge(source, predicate="t.id = s.id", source_alias="s", target_alias="t")
                .when_not_matched_insert_all()
                .execute()
            )
            return record if result.get("num_target_rows_inserted") == 1 else None

        for _ in range(RETRIES):
            with self._lock:
                record = retry_commits(attempt)
            if record is not None:
                self.maintain()
                return record
        raise RuntimeError(f"could not allocate a job id in {self.path} after {RETRIES} tries")

    def replace(
        self,
        record: JobRecord,
        expected: Iterable[JobStatus],
        lease: Lease | None = None,
        expired_before: int | None = None,
    ) -> JobRecord:
        """Store `record` if the stored job is still in one of the `expected` statuses
        (and, with `lease.holder`, still held by that runner; with `expired_before`,
        its lease ran out before then). Raises StatusConflict otherwise.
        """
        expected = tuple(expected)
        statuses = ", ".join(sql_text(s.value) for s in expected)
        row = _row(record)
        updates = {
            "status": sql_text(row["status"]),
            "updateTime": str(row["updateTime"]),
            "record": sql_text(row["record"]),
        }
        predicate = f"id = {record.id} AND status IN ({statuses})"
        if lease is not None:
            updates["runner"] = sql_text(lease.runner) if lease.runner else "NULL"
            updates["leaseUntil"] = str(lease.until) if lease.until is not None else "NULL"
            if lease.holder is not None:
                predicate += f" AND runner = {sql_text(lease.holder)}"
        if expired_before is not None:
            predicate += f" AND leaseUntil < {int(expired_before)}"

        def attempt() -> int:
            table = self._table()
            if table is None:
                return 0
            return table.update(updates=updates, predicate=predicate)["num_updated_rows"]

        with self._lock:
            updated = retry_commits(attempt)
        if updated != 1:
            current = self.get(record.id)
            raise StatusConflict(record.id, current.status.value, expected)
        return record

    def maintain(self) -> None:
        """Compact the table's small files once there are many; a lost race here is harmless.

        Creates call it (every job adds a file); it looks at the file list only every
        COMPACT_AFTER_FILES commits, so most calls cost nothing.
        """
        with self._lock:
            table = self._table()
            if table is None or table.version() % COMPACT_AFTER_FILES:
                return
            if len(table.file_uris()) < COMPACT_AFTER_FILES:
                return
            try:
                table.optimize.compact()
                table.update_incremental()
                table.create_checkpoint()
            except (CommitFailedError, DeltaError):
                pass


def _row(record: JobRecord) -> dict:
    return {
        "id": record.id,
        "imsOrgId": record.ims_org_id,
        "sandboxName": record.sandbox_name,
        "status": record.status.value,
        "creationTime": record.creation_time,
        "updateTime": record.update_time,
        "record": record.to_json(),
        "runner": None,
        "leaseUntil": None,
    }
