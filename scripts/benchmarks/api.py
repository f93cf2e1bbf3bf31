"""Latency of the HTTP API (scripts/bench api): create, get and list over a job table of N jobs.

A temporary deployment with an empty lake; the job table is filled in a few bulk
commits, then a real uvicorn server on 127.0.0.1 is timed with httpx, one request at
a time. A profile of the same operations in process then shows where their time goes.
Last, the jobs created over HTTP go through a runner's writes (claim, progress, finish),
and the job table's disk use is measured before and after maintenance.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from jobs.control import JOB_TABLE_SCHEMA, JobStore, claim, create_job, job_row, list_jobs, new_record
from jobs.shells.http import make_server, running
from jobs.spec import Config, JobRecord, JobStatus, now_ms, parse_definition
from sample_lake import empty_deployment

ORG, SANDBOX, TOKEN = "bench@Org", "prod", "bench-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "x-api-key": "bench", "x-gw-ims-org-id": ORG,
           "x-sandbox-name": SANDBOX}
BODY = {"fields": "identities.id,personalEmail.address", "filter": {"segments": [{"segmentId": "segment-01"}]},
        "destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
COMMIT_ROWS = 2500


def fill(config: Config, jobs: int, shape: Callable[[JobRecord], JobRecord] | None = None) -> list[JobRecord]:
    """`jobs` NEW records, one per millisecond up to now (each as `shape` makes it of the NEW one, if given),
    written in a few big commits."""
    definition = parse_definition(BODY)
    start = now_ms() - jobs
    records = [new_record(definition, config, i + 1, ORG, SANDBOX, f"bench-{i + 1}", start + i)
               for i in range(jobs)]
    if shape is not None:
        records = [shape(r) for r in records]
    for first in range(0, jobs, COMMIT_ROWS):
        rows = [job_row(r) for r in records[first:first + COMMIT_ROWS]]
        write_deltalake(config.job_table_path, pa.Table.from_pylist(rows, schema=JOB_TABLE_SCHEMA), mode="append")
    return records


def timed(call: Callable[[], httpx.Response], count: int) -> list[float]:
    """Milliseconds per call, after a few untimed warm-up calls."""
    for _ in range(3):
        call().raise_for_status()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = call()
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


def percentiles(times: list[float]) -> tuple[float, float, float, float]:
    """p50, p90, p99 and max."""
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return cuts[49], cuts[89], cuts[98], max(times)


def run_through(store: JobStore, job_ids: range) -> None:
    """The writes a runner makes for each job, without Spark: claim, two progress updates, finish."""
    for job_id in job_ids:
        handle = claim(store, job_id, "bench-runner", 30_000)
        handle.update(stage="planning")
        handle.update(stage="exporting: 1/2 tasks")
        handle.finish(JobStatus.SUCCEEDED)


def disk(path: str) -> str:
    """A table's disk use: total, data files, log."""
    files = [f for f in Path(path).rglob("*") if f.is_file()]
    log = sum(f.stat().st_size for f in files if "_delta_log" in f.parts)
    data = sum(f.stat().st_size for f in files) - log
    return f"{(data + log) / 1e6:.1f} MB in {len(files)} files (data {data / 1e6:.1f} MB, log {log / 1e6:.1f} MB)"


def hot_spots(call: Callable[[], object], count: int = 20, top: int = 5) -> list[tuple[str, float]]:
    """The calls with the most time of their own (ms per `call`), profiled in this process:
    where a request's time goes, without the HTTP layer and without knowing the store's insides."""
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [call() for _ in range(count)])
    # (file, line, name) -> (calls, ncalls, tottime, cumtime, callers); typeshed's Stats omits this attribute.
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, dict[Any, Any]]]
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    ranked = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    return [(_label(key), entry[2] * 1000 / count) for key, entry in ranked]


def _label(key: tuple[str, int, str]) -> str:
    file, line, name = key
    return name if file == "~" else f"{Path(file).name}:{line} {name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench api", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in the table (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per operation (default: %(default)s)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="export-jobs-bench-") as root:
        config = empty_deployment(Path(root), {ORG: (TOKEN, [SANDBOX])})
        started = time.perf_counter()
        records = fill(config, args.jobs)
        table = DeltaTable(config.job_table_path)
        print(f"job table: {args.jobs} jobs in {len(table.file_uris())} files, version {table.version()}, "
              f"filled in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        deep = records[len(records) // 2]
        deep_cursor = f"{deep.creation_time}_{deep.id}"
        rng = random.Random(7)

        with running(make_server(config, port=0, log_level="warning")) as url, \
                httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client:
            figures = {
                "create": timed(lambda: client.post("/export/jobs", json=BODY), args.requests),
                "get": timed(lambda: client.get(f"/export/jobs/{rng.randint(1, args.jobs)}"), args.requests),
                "list (first page)": timed(lambda: client.get("/export/jobs?limit=50"), args.requests),
                "list (deep page)": timed(
                    lambda: client.get(f"/export/jobs?limit=50&offset={deep_cursor}"), args.requests),
            }
        table = DeltaTable(config.job_table_path)
        print(f"job table after the run: {len(table.file_uris())} files, version {table.version()}",
              file=sys.stderr)
        store = JobStore(config.job_table_path)
        spots = {
            "create": hot_spots(lambda: create_job(store, config, BODY, ORG, SANDBOX)),
            "get": hot_spots(lambda: store.get(deep.id, ORG, SANDBOX)),
            "list (first page)": hot_spots(lambda: list_jobs(store, ORG, SANDBOX, 50)),
        }

        # Every job created over HTTP or while profiling, through a runner's writes.
        created = range(args.jobs + 1, store.list(ORG, SANDBOX, limit=1)[0].id + 1)
        run_through(store, created)
        before = disk(config.job_table_path)
        store.compact()
        store.vacuum(retention_hours=0)  # as maintenance does once tableRetentionHours has passed
        after = disk(config.job_table_path)

    print("\nwhere the time goes, profiled in process (own time of the top calls, ms per operation):")
    for operation, calls in spots.items():
        print(f"  {operation}")
        for label, ms in calls:
            print(f"    {ms:7.1f}  {label}")
    summary = {name: percentiles(times) for name, times in figures.items()}
    print(f"\n{'operation':<20}{'requests':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, cuts in summary.items():
        print(f"{name:<20}{args.requests:>9}" + "".join(f"{ms:>9.1f}" for ms in cuts))
    print(f"\njob table disk after {args.jobs + len(created)} jobs ({len(created)} of them run through a runner's"
          f" writes): {before}; after compaction and vacuum, once the retention has passed: {after}")
    print("\n" + "; ".join(f"{name} p50 {p50:.1f} ms p99 {p99:.1f} ms" for name, (p50, _, p99, _) in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
