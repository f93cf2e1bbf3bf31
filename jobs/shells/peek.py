"""`export-jobs peek ID`: a few of a job's exported rows, read without Spark.

Prints the rows of the job's batches as JSON lines (of a mirror job: the mirror at the version it
wrote) and checks their count against the job record's counter.
"""

from __future__ import annotations

import json
import sys

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder

from jobs.control import EXPORT_JOB, JobStore, one_of
from jobs.spec import EXIT_FAILED, Config, LakeError


def peek(config: Config, job_id: int, limit: int, org: str, sandbox: str) -> int:
    """Print up to `limit` rows of the tenant's job's batches; 0 if the destination holds as many as the
    record counts."""
    record = JobStore(config.job_table_path).get(job_id, org, sandbox, EXPORT_JOB)
    written = record.export_destination
    destination = config.for_tenant(org, sandbox).destination(written.dataset_id)
    if destination is None:
        raise LakeError(f"job {record.id}'s destination {written.dataset_id!r} is no longer declared")
    path = config.resolve(destination.path)
    if destination.mode == "mirror":
        # The mirror as the job left it: its audience then, which the record counts.
        version = record.metrics.destination_version
        table = DeltaTable(path) if version is None else DeltaTable(path, version=version)
        sql = "SELECT * FROM out"
    else:
        table, sql = DeltaTable(path), f"SELECT * FROM out WHERE {one_of('_batchId', written.batch_ids())}"
    rows = pa.table(QueryBuilder().register("out", table).execute(sql)).to_pylist()
    for row in rows[:limit]:
        print(json.dumps(row, default=str))
    expected = record.exported_rows
    print(f"{len(rows)} rows in the destination for job {record.id}; the record counts {expected}",
          file=sys.stderr)
    return 0 if len(rows) == expected else EXIT_FAILED
