"""Mirror destinations (scripts/bench mirror): a mirror job that changes 1% of the audience, against the
first (full) load of the mirror and against the append export of the same job.

One lake (the export benchmark's, without events) and the 20-segment combined job. Before the change, one
unmeasured full load makes each base mirror. Then 1% of the profiles get a later fragment (a new email,
and for half of them every membership exited) in profiles_1. Each round then runs, each into a
destination of its own: the full mirror load (the lake after the change), the incremental mirror job
(fromIngestTimestamp = the change's start) on a copy of the base mirror, the same on a mirror with
deletion vectors (`deletionVectors = true`), and the append exports of the full and the incremental job.
The figures are the medians of `profileExportTime`.
Target: the 1% change costs at most half the full load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from benchmarks.lake import Lake, make_lake
from benchmarks.ours import job_body
from benchmarks.rounds import parse_size, say
from benchmarks.settings import DESTINATION_ID, MASTER, SPARK_CONF
from jobs.control import JobStore, create_job, run_job
from jobs.engine import build_session
from jobs.spec import JobRecord, JobStatus

CHANGED_SHARE = 0.01
TARGET = 0.5  # incremental mirror / full mirror load


def change_profiles(spark: SparkSession, lake: Lake) -> str:
    """Appends a later fragment for 1% of the profiles (the first dataset's) to the second dataset: a
    new email, and for half of them every membership exited. Returns the change's start, exclusive, as
    fromIngestTimestamp takes it."""
    first, second = lake.profile_paths
    fragments = spark.read.format("delta").load(first)
    row = spark.read.format("delta").load(second).agg(F.max("_ingestTime")).first()
    assert row is not None, "a global aggregation has one row"
    latest = row[0]
    bucket = F.abs(F.xxhash64(F.to_json("identityMap"))) % 1000
    exits = bucket % 2 == 0
    exited = F.transform_values("segmentMembership", lambda _, segments: F.transform_values(
        segments, lambda _, m: m.withField("status", F.lit("exited"))))
    changed = (fragments.where(bucket < int(1000 * CHANGED_SHARE))
               .withColumn("_ingestTime", F.lit(latest + timedelta(hours=1)))
               .withColumn("personalEmail", F.col("personalEmail").withField(
                   "address", F.concat(F.lit("changed-"), "personalEmail.address")))
               .withColumn("segmentMembership", F.when(exits, exited)))
    changed.write.format("delta").mode("append").option("mergeSchema", "true").save(second)
    return latest.isoformat().replace("+00:00", "") + "Z"


def run(spark: SparkSession, lake: Lake, name: str, mirror: bool, body: dict[str, Any],
        base: Path | None = None, deletion_vectors: bool = False) -> JobRecord:
    config = lake.deployment(name, mirror=mirror, deletion_vectors=deletion_vectors)
    destination = config.destination(DESTINATION_ID)
    assert destination is not None
    if base is not None:
        shutil.copytree(base, config.resolve(destination.path))
    store = JobStore(config.job_table_path)
    record = run_job(store, config, create_job(store, config, body, config.default_org, config.default_sandbox).id,
                     spark)
    if record.status is not JobStatus.SUCCEEDED:
        raise RuntimeError(f"{name}: job {record.id} ended {record.status.value}: {record.errors}")
    return record


def seconds(record: JobRecord) -> float:
    span = record.metrics.profile_export_time
    assert span is not None and span.total_time_in_ms is not None
    return span.total_time_in_ms / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench mirror", description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=parse_size, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = build_session(MASTER, "export-jobs-bench-mirror", SPARK_CONF)
    spark.sparkContext.setLogLevel("ERROR")
    full = job_body(20)
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="export-jobs-bench-mirror-") as tmp:
        lake = make_lake(spark, Path(tmp) / "lake", args.profiles, events=False)
        runs = Path(tmp) / "lake" / "runs"
        bases = {dvs: run(spark, lake, f"base-{dvs}", True, full, deletion_vectors=dvs) for dvs in (False, True)}
        since = change_profiles(spark, lake)
        incremental = {**full, "filter": {**full["filter"], "fromIngestTimestamp": since}}
        say(f"base mirror: {bases[False].metrics.total_exported_profile_counter:,} profiles in "
            f"{seconds(bases[False]):.1f} s; the change starts after {since}")
        figures = {  # name -> (mirror, deletion vectors, body, the mirror it starts from)
            "full mirror load": (True, False, full, None),
            "1% change, mirror (incremental)": (True, False, incremental, runs / "base-False"),
            "1% change, mirror with deletion vectors (incremental)": (True, True, incremental, runs / "base-True"),
            "full append export": (False, False, full, None),
            "1% change, append export (incremental)": (False, False, incremental, None),
        }
        for round_ in range(args.runs + 1):
            for number, (name, (mirror, dvs, body, start)) in enumerate(figures.items()):
                started = time.perf_counter()
                record = run(spark, lake, f"figure-{number}-{round_}", mirror, body, start, dvs)
                m = record.metrics
                say(f"round {round_}{' (warm-up)' if round_ == 0 else ''}: {name}: {seconds(record):.1f} s "
                    f"(wall {time.perf_counter() - started:.1f} s; inserted {m.inserted_profile_counter}, updated "
                    f"{m.updated_profile_counter}, deleted {m.deleted_profile_counter}, audience "
                    f"{m.total_exported_profile_counter})")
                if round_:
                    times.setdefault(name, []).append(seconds(record))
    spark.stop()
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.profiles:,} profiles, the 20-segment job, {CHANGED_SHARE:.0%} of the profiles changed, "
          f"median of {args.runs}:")
    for name, value in median.items():
        print(f"  {name}: {value:.1f} s")
    load, append = median["full mirror load"], median["1% change, append export (incremental)"]
    for variant in ("mirror", "mirror with deletion vectors"):
        change = median[f"1% change, {variant} (incremental)"]
        print(f"  1% change, {variant} / full mirror load: {change / load:.2f} (target <= {TARGET})")
        print(f"  1% change, {variant} / append: {change / append:.2f}")
    print(f"  full mirror load / full append export: {load / median['full append export']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
