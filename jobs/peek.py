"""`python -m jobs.peek --conf PATH ID`: a few of a job's exported rows, read without Spark.

Prints the rows of the job's batches as JSON lines and checks their count
against the job record's counter.
"""

from __future__ import annotations

import argparse
import json
import sys

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder

from jobs.config import load_config
from jobs.store import JobStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.peek", description=__doc__.splitlines()[0])
    parser.add_argument("--conf", default="conf/export.toml")
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("id", type=int)
    args = parser.parse_args(argv)
    config = load_config(args.conf)
    record = JobStore(config.job_table_path).get(args.id)
    destination = config.destination(record.destination.dataset_id)
    if destination is None:
        print(f"job {record.id}'s destination {record.destination.dataset_id!r} is no longer declared",
              file=sys.stderr)
        return 2
    batches = ", ".join(f"'{b}'" for b in record.destination.batch_ids())
    query = QueryBuilder().register("out", DeltaTable(config.resolve(destination.path)))
    rows = pa.table(query.execute(f"SELECT * FROM out WHERE _batchId IN ({batches})")).to_pylist()
    for row in rows[: args.limit]:
        print(json.dumps(row, default=str))
    # Per-segment batches repeat a profile, so compare rows with the per-batch counters there.
    counter = record.metrics.exported_profile_by_segment_counter
    expected = (
        sum(n for inner in counter.values() for n in inner.values()) if counter
        else record.metrics.total_exported_profile_counter
    )
    print(f"{len(rows)} rows in the destination for job {record.id}; the record counts {expected}",
          file=sys.stderr)
    return 0 if len(rows) == expected else 1


if __name__ == "__main__":
    sys.exit(main())
