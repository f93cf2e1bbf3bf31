"""The job table: one Delta table, one current row per job (README, "The job table").

It is a `DeltaRows` table (jobs.tables): read and written with delta-rs, so that
creating, reading and listing jobs needs no JVM. Every change is a conditional
commit (`UPDATE … WHERE id = … AND status IN …`), and a condition that no longer
holds is reported to the caller (StatusConflict) instead of overwriting the other
writer's change.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake
from deltalake.exceptions import DeltaError

from jobs.model import JobRecord, JobStatus
from jobs.tables import COMPACT_AFTER_FILES, RETRIES, DeltaRows, retry_commits, sql_text

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
# Checkpoints keep opening and catching up cheap; compaction keeps reads to a few files.
CHECKPOINT_EVERY = 10


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
    ) -> builtins.list[JobRecord]:
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

    def ids_with_status(self, status: JobStatus) -> builtins.list[int]:
        rows = self._query(f"SELECT id FROM jobs WHERE status = {sql_text(status.value)} ORDER BY id")
        return [r["id"] for r in rows]

    def running(self, lease_expired_before: int | None = None) -> builtins.list[dict[str, Any]]:
        """PROCESSING and CANCELLING jobs (only those whose lease ran out before then, if given):
        id, status, runner, leaseUntil."""
        where = "status IN ('PROCESSING', 'CANCELLING')"
        if lease_expired_before is not None:
            where += f" AND leaseUntil < {int(lease_expired_before)}"
        return self._query(f"SELECT id, status, runner, leaseUntil FROM jobs WHERE {where} ORDER BY id")

    # -- writes

    def create(self, build: Callable[[int], JobRecord]) -> JobRecord:
        """Store the record `build(id)` under the next free id."""

        def attempt() -> JobRecord | None:
            rows = self._query("SELECT max(id) AS top FROM jobs")
            job_id = (rows[0]["top"] or 0) + 1 if rows else 1
            record = build(job_id)
            source = pa.Table.from_pylist([job_row(record)], schema=SCHEMA)
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
                # Every job adds a file: look at the file list every COMPACT_AFTER_FILES commits.
                if record.id % COMPACT_AFTER_FILES == 0:
                    self.compact()
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
        row = job_row(record)
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

        if self._update(updates, predicate) != 1:
            current = self.get(record.id)
            raise StatusConflict(record.id, current.status.value, expected)
        return record


def job_row(record: JobRecord) -> dict[str, Any]:
    """The table row of a record (no lease), in SCHEMA's columns."""
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
