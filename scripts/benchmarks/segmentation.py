"""Segment jobs (scripts/bench segmentation): a segment job of the export benchmark's 20 evaluated
segments (10 on attributes, 10 counting events) against the evaluating export of the same segments.

Both evaluate every profile of the same lake and write the same memberships back to a fresh
segmentation dataset of their own; the export also writes its 20-segment batch, the segment job
writes nothing else. Runs alternate in rounds after an unmeasured warm-up round; the figures are
the medians of `profileExportTime` and `profileSegmentationTime`. The segment job should cost less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.lake import make_lake
from benchmarks.memory import PeakMemory
from benchmarks.ours import define_segments, evaluation_body, run_ours
from benchmarks.rounds import parse_size, say
from benchmarks.settings import MASTER, SPARK_CONF
from jobs.control import JobStore, create_segment_job, run_job
from jobs.engine import build_session
from jobs.spec import JobStatus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench segmentation", description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=parse_size, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = build_session(MASTER, "export-jobs-bench-segmentation", SPARK_CONF)
    spark.sparkContext.setLogLevel("ERROR")
    exports: list[float] = []
    segment_jobs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="export-jobs-bench-segmentation-") as tmp:
        lake = make_lake(spark, Path(tmp) / "lake", args.profiles, events=True)
        ids = define_segments(lake.deployment("definitions"))
        memory = PeakMemory(spark)
        for round_ in range(args.runs + 1):
            export = run_ours(spark, lake, evaluation_body(ids), memory, f"evaluated-{round_}").seconds
            config = lake.deployment(f"segment-job-{round_}", segmentation=True)
            store = JobStore(config.job_table_path)
            job = create_segment_job(store, config, [{"segmentId": i} for i in ids], config.default_org,
                                     config.default_sandbox)
            started = time.perf_counter()
            final = run_job(store, config, job.id, spark)
            wall = time.perf_counter() - started
            span = final.metrics.profile_segmentation_time
            if final.status is not JobStatus.SUCCEEDED or span is None or span.total_time_in_ms is None:
                raise RuntimeError(f"segment job {final.id} ended {final.status.value}: {final.errors}")
            segmented = span.total_time_in_ms / 1000
            say(f"round {round_}{' (warm-up)' if round_ == 0 else ''}: evaluated export {export:.1f} s, "
                f"segment job {segmented:.1f} s (wall {wall:.1f} s)")
            if round_:
                exports.append(export)
                segment_jobs.append(segmented)
    spark.stop()
    export_s, segment_s = statistics.median(exports), statistics.median(segment_jobs)
    print(f"{args.profiles:,} profiles, 20 evaluated segments (10 with events), median of {args.runs}:")
    print(f"  evaluating export (profileExportTime): {export_s:.1f} s")
    print(f"  segment job (profileSegmentationTime): {segment_s:.1f} s")
    print(f"  segment job / evaluating export: {segment_s / export_s:.2f} (target < 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
