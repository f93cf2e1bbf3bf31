"""Which performance settings pay on a cluster (scripts/bench settings).

On a standalone cluster of two one-core executors (benchmarks.clustered) and one lake
(default 1M profiles, no events), our 1- and 20-segment exports run with Spark's defaults
for every setting of jobs.engine.session's EMBEDDED_TUNING, and with each setting alone
on top of them. The runs go in rounds (every variant and job once per round) and each
run first drops Delta's cached snapshots, as a fresh spark-submit driver has none. It
prints, per variant, the median export time and its ratio to Spark's defaults: a setting
earns its place in SUBMITTED_TUNING with a ratio clearly below 1 for both jobs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.clustered import WORKER_MEMORY, WORKERS, cluster_session, forget_delta_state
from benchmarks.lake import Lake, make_lake
from benchmarks.memory import PeakMemory
from benchmarks.ours import job_body, run_ours
from benchmarks.rounds import Figure, Sample, Scenario, interleave, parse_size, say
from benchmarks.settings import SEGMENTS
from benchmarks.standalone import standalone_cluster
from jobs.engine import EMBEDDED_TUNING, SUBMITTED_TUNING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

JOBS = {"one": 1, "twenty": SEGMENTS}


def variants() -> dict[str, dict[str, str]]:
    """Spark's defaults, then each embedded setting alone on top of them."""
    return {"Spark's defaults": {}, **{f"{k}={v}": {k: v} for k, v in EMBEDDED_TUNING.items()}}


def scenario(spark: SparkSession, lake: Lake, memory: PeakMemory, name: str, settings: dict[str, str],
             job: str) -> Scenario:
    def run(output: str) -> Sample:
        for key in EMBEDDED_TUNING:
            spark.conf.unset(key)
        for key, value in settings.items():
            spark.conf.set(key, value)
        forget_delta_state(spark)
        return run_ours(spark, lake, job_body(JOBS[job]), memory, output)

    return Scenario(f"{name}|{job}", f"{name}, {JOBS[job]} segment(s)", "ours", run)


def table(figures: dict[str, Figure]) -> list[str]:
    def cell(name: str, job: str) -> str:
        figure, base = figures[f"{name}|{job}"], figures[f"Spark's defaults|{job}"]
        runs = ", ".join(f"{s:.1f}" for s in figure.seconds)
        return f"{figure.median:.2f} ({runs}) | {figure.median / base.median:.2f}"

    lines = ["| setting | 1 segment s (runs) | × defaults | 20 segments s (runs) | × defaults |",
             "|---|---:|---:|---:|---:|"]
    return lines + [f"| `{name}` | {cell(name, 'one')} | {cell(name, 'twenty')} |" for name in variants()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench settings", description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=parse_size, default=1_000_000, help="lake size (default: 1M)")
    parser.add_argument("--runs", type=int, default=2, help="measured rounds (default: %(default)s)")
    args = parser.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with (tempfile.TemporaryDirectory(prefix="export-jobs-settings-") as tmp,
          standalone_cluster(Path(tmp) / "cluster", workers=WORKERS, memory=WORKER_MEMORY) as cluster):
        spark = cluster_session(cluster, "export-jobs-bench-settings", Path(tmp) / "events")
        lake = make_lake(spark, Path(tmp) / "lake", args.profiles, events=False)
        memory = PeakMemory(spark)
        figures = interleave([scenario(spark, lake, memory, name, settings, job)
                              for name, settings in variants().items() for job in JOBS], args.runs)
        spark.stop()
    say(f"{args.profiles:,} profiles, {WORKERS} workers x 1 core; kept now: {SUBMITTED_TUNING or 'none'}")
    print("\n".join(table(figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
