"""Spark's task metrics of our export at several lake sizes, and a plan for 100M profiles
(scripts/bench scaling; the SCALING section of docs/benchmarks-report.md).

On a standalone cluster of two one-core executors (benchmarks.clustered, settings as under
spark-submit), a lake per size (no events) and the 20-segment export, a warm-up run and
--runs measured runs per size. From the application's event log (benchmarks.tasks) it
takes, per run, the tasks, executor time, shuffle written and read (and how much of it
came from the other executor), spill, the largest peak execution memory of one task and
the bytes written; from the destination's Delta log, the files. The plan for 100M profiles
scales the per-profile rates of the largest size and says for each number which rate.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.clustered import EXECUTOR_MEMORY, WORKER_CORES, WORKER_MEMORY, WORKERS, cluster_session
from benchmarks.lake import make_lake, table_stats
from benchmarks.memory import PeakMemory
from benchmarks.ours import job_body, ours
from benchmarks.report import replace_section
from benchmarks.rounds import interleave, parse_sizes, say
from benchmarks.settings import SEGMENTS
from benchmarks.standalone import standalone_cluster
from benchmarks.tasks import GroupMetrics, StageMetrics, group_metrics, latest_group

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

HEADING = "## SCALING"
TARGET_PROFILES = 100_000_000
CORES = WORKERS * WORKER_CORES
MB = 2**20
# Spark's unified memory: (heap - 300 MiB reserved) x spark.memory.fraction, shared by the tasks running at once.
RESERVED_MB, MEMORY_FRACTION = 300, 0.6
PLAN_EXECUTOR_CORES = 4
PLAN_CORES = (32, 64, 128)


@dataclass(frozen=True)
class Point:
    profiles: int
    seconds: float  # median profileExportTime
    metrics: GroupMetrics  # of the last measured run
    files: int
    rows: int
    lake_bytes: int  # the fragment tables' files

    def per_profile(self, total: float) -> float:
        return total / self.profiles

    @property
    def core_s(self) -> float:
        return self.metrics.total("run_ms") / 1000


def measure(spark: SparkSession, base: Path, events: Path, profiles: int, runs: int) -> Point:
    lake = make_lake(spark, base / f"lake-{profiles}", profiles, events=False)
    figure = interleave([ours(spark, lake, PeakMemory(spark), "twenty", f"{profiles:,}: {SEGMENTS} segments",
                              job_body(SEGMENTS))], runs)["twenty"]
    last = figure.last
    app = spark.sparkContext.applicationId
    # Each lake has its own job table, so job ids repeat across sizes: the job's group is the latest of its id.
    metrics = group_metrics(events, app, latest_group(events, app, f"export-job-{last.job_id}-"))
    rows, files, _ = table_stats(last.output)
    lake_bytes = sum(table_stats(path)[2] for path in lake.profile_paths)
    return Point(profiles, statistics.median(figure.seconds), metrics, files, rows, lake_bytes)


def _mb(n: float) -> str:
    return f"{n / MB:,.1f}"


def measured_lines(points: list[Point]) -> list[str]:
    lines = ["| profiles | export s | tasks | executor s (CPU s) | input MiB | shuffle written MiB (B/profile) | "
             "shuffle read MiB (from the other executor) | spill memory / disk MiB | peak memory / task MiB | "
             "output MiB (B/profile) | files | rows |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in points:
        m = p.metrics
        written, read = m.total("shuffle_write_bytes"), m.total("shuffle_read_bytes")
        lines.append(
            f"| {p.profiles:,} | {p.seconds:.1f} | {m.tasks} | {p.core_s:.1f} ({m.total('cpu_ms') / 1000:.1f}) | "
            f"{_mb(m.total('input_bytes'))} | "
            f"{_mb(written)} ({p.per_profile(written):.0f}) | {_mb(read)} ({_mb(m.total('remote_read_bytes'))}) | "
            f"{_mb(m.total('spill_memory_bytes'))} / {_mb(m.total('spill_disk_bytes'))} | "
            f"{_mb(m.peak_task_memory_bytes())} | {_mb(m.total('output_bytes'))} "
            f"({p.per_profile(m.total('output_bytes')):.0f}) | {p.files} | {p.rows:,} |")
    return lines


def stage_lines(point: Point) -> list[str]:
    """The stages that took a second of executor time or more; the rest summed up in one line."""
    lines = ["| stage | tasks | executor s | wall s | input MiB | shuffle read MiB | shuffle written MiB | "
             "spill MiB | peak memory / task MiB | output MiB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    big = [s for s in point.metrics.stages if s.run_ms >= 1000]
    lines.extend(f"| {s.stage_id}: `{s.name[:50]}` | {s.tasks} | {s.run_ms / 1000:.1f} | {s.wall_ms / 1000:.1f} | "
                 f"{_mb(s.input_bytes)} | {_mb(s.shuffle_read_bytes)} | {_mb(s.shuffle_write_bytes)} | "
                 f"{_mb(s.spill_memory_bytes + s.spill_disk_bytes)} | {_mb(s.peak_task_memory_bytes)} | "
                 f"{_mb(s.output_bytes)} |" for s in big)
    rest = [s for s in point.metrics.stages if s not in big]
    lines.append(f"| {len(rest)} other stages (probe, Delta log) | {sum(s.tasks for s in rest)} | "
                 f"{sum(s.run_ms for s in rest) / 1000:.1f} | {sum(s.wall_ms for s in rest) / 1000:.1f} | | | | | | |")
    return lines


@dataclass(frozen=True)
class Plan:
    """The 100M-profile figures, each from a rate measured at the largest size."""

    point: Point

    @property
    def scale(self) -> float:
        return TARGET_PROFILES / self.point.profiles

    @property
    def scan(self) -> StageMetrics:
        """The stage that reads the fragments and writes the merge's shuffle."""
        return max(self.point.metrics.stages, key=lambda s: s.shuffle_write_bytes)

    @property
    def reduce(self) -> StageMetrics:
        """The stage that reads the merge's shuffle and writes the batches."""
        return max(self.point.metrics.stages, key=lambda s: s.shuffle_read_bytes)

    @property
    def fixed_s(self) -> float:
        """Export time outside the scan and reduce stages (probe, Delta logs, commit), taken as constant."""
        return self.point.seconds - (self.scan.wall_ms + self.reduce.wall_ms) / 1000

    @property
    def reduce_task_bytes(self) -> float:
        return self.reduce.shuffle_read_bytes / self.reduce.tasks

    @property
    def reduce_tasks(self) -> int:
        """Tasks of the size AQE made at the largest size, for the shuffle scaled up."""
        return math.ceil(self.reduce.shuffle_read_bytes * self.scale / self.reduce_task_bytes)

    @property
    def scan_tasks(self) -> int:
        """One per spark.sql.files.maxPartitionBytes (128 MiB) of the lake's files, scaled up."""
        return math.ceil(self.point.lake_bytes * self.scale / (128 * MB))

    def seconds_on(self, cores: int, cpu: bool = False) -> float:
        """Fixed time, then each stage in waves of `cores` tasks, a task as long as measured per byte
        (its executor run time, or with `cpu` its CPU time: what it takes on a core of its own)."""
        def task_s(stage: StageMetrics) -> float:
            return (stage.cpu_ms if cpu else stage.run_ms) / 1000 / stage.tasks

        scan_task_s = task_s(self.scan) * self.scan.tasks / self.point.lake_bytes * 128 * MB
        return (self.fixed_s + math.ceil(self.scan_tasks / cores) * scan_task_s
                + math.ceil(self.reduce_tasks / cores) * task_s(self.reduce))


def plan_lines(points: list[Point]) -> list[str]:
    """The 100M-profile plan, each number from a per-profile rate of the largest measured size."""
    big, small = points[-1], points[0]
    plan = Plan(big)
    m = big.metrics
    reduce, scan = plan.reduce, plan.scan
    shuffle = m.total("shuffle_write_bytes") * plan.scale
    output = m.total("output_bytes") * plan.scale
    partitions = math.ceil(plan.reduce_tasks * 1.5 / 64) * 64  # headroom for AQE to coalesce, a multiple of 64
    files = math.ceil(plan.reduce_tasks * big.files / reduce.tasks)
    peak = m.peak_task_memory_bytes()
    heap_mb = math.ceil((2 * PLAN_EXECUTOR_CORES * peak / MB / MEMORY_FRACTION + RESERVED_MB) / 1024) * 1024
    linear = {name: big.per_profile(total(big)) / small.per_profile(total(small)) for name, total in (
        ("shuffle written", lambda p: p.metrics.total("shuffle_write_bytes")),
        ("executor time", lambda p: p.core_s), ("output", lambda p: p.metrics.total("output_bytes")))}
    peak_ratio = m.peak_task_memory_bytes() / small.metrics.peak_task_memory_bytes()
    return [
        f"Rates per profile at {big.profiles:,} against {small.profiles:,} (1.00 = linear): "
        + ", ".join(f"{k} {v:.2f}" for k, v in linear.items()) + f"; the largest peak memory of a task "
        f"{peak_ratio:.2f}× (reduce partitions of {_mb(Plan(small).reduce_task_bytes)} and "
        f"{_mb(plan.reduce_task_bytes)} MiB). Each number below scales a rate measured "
        f"at {big.profiles:,} profiles to {TARGET_PROFILES:,} (×{plan.scale:.0f}), 20 segments:",
        "",
        f"- **Shuffle**: {big.per_profile(m.total('shuffle_write_bytes')):.0f} B written per profile → "
        f"{shuffle / 2**30:,.1f} GiB.",
        f"- **Partitions**: the reduce stage read {_mb(plan.reduce_task_bytes)} MiB per task "
        f"({reduce.tasks} tasks after AQE's coalescing to its 64 MiB advisory size) → {plan.reduce_tasks:,} reduce "
        f"tasks of that size; `spark.sql.shuffle.partitions={partitions}` (1.5× that, so that AQE coalesces "
        "rather than splits), `spark.sql.adaptive.advisoryPartitionSizeInBytes` left at 64m. The scan: "
        f"{big.per_profile(big.lake_bytes):.0f} B of fragment files per profile → {plan.scan_tasks:,} tasks of "
        "128 MiB (`spark.sql.files.maxPartitionBytes`).",
        f"- **Memory**: the largest peak execution memory of one task was {_mb(peak)} MiB, with "
        f"{_mb(m.total('spill_memory_bytes'))} MiB spilled, in executors of {EXECUTOR_MEMORY} and one core; "
        "partitions of the same size keep it there. Executors of "
        f"{PLAN_EXECUTOR_CORES} cores with twice that per core in Spark's unified memory ((heap − {RESERVED_MB} "
        f"MiB) × {MEMORY_FRACTION}) → `spark.executor.memory={heap_mb // 1024}g`. The driver collects counters "
        "only: `spark.driver.memory=2g`.",
        f"- **Output**: {big.per_profile(m.total('output_bytes')):.0f} B written per profile → "
        f"{output / 2**30:,.1f} GiB, one file per write task ({big.files} files from {reduce.tasks} tasks "
        f"measured) → about {files:,} files of {_mb(output / files)} MiB.",
        f"- **Time**: {big.per_profile(big.core_s) * 1e6:.1f} executor-µs per profile → "
        f"{big.core_s * plan.scale / 3600:,.1f} core-hours. Measured: the scan took "
        f"{scan.run_ms / 1000 / (big.lake_bytes / MB):.2f} executor-s per MiB of fragment files, a reduce task "
        f"{reduce.run_ms / 1000 / reduce.tasks:.1f} s ({reduce.cpu_ms / 1000 / reduce.tasks:.1f} s of CPU), "
        f"and the rest of the export {plan.fixed_s:.0f} s (taken as constant). In waves of one task per core, "
        "from run time (as loaded as this machine was) and from CPU time (cores of their own, I/O waits aside): "
        + ", ".join(f"{c} cores ({c // PLAN_EXECUTOR_CORES} executors) {plan.seconds_on(c) / 60:,.1f} / "
                    f"{plan.seconds_on(c, cpu=True) / 60:,.1f} min" for c in PLAN_CORES) + ".",
    ]


def section(points: list[Point], argv: list[str]) -> str:
    out = [
        HEADING,
        "",
        f"`scripts/bench scaling {' '.join(argv)}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: a standalone cluster "
        f"of {WORKERS} workers × {WORKER_CORES} core ({WORKER_MEMORY} each, executors of {EXECUTOR_MEMORY}), "
        f"settings as under spark-submit, the {SEGMENTS}-segment export of a lake without events; metrics from "
        "Spark's event log (successful tasks of the job's Spark job group), files from the destination's Delta log. "
        "Load average (1, 5, 15 min) at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
        + f" on {os.cpu_count()} cores: the times count other work on the machine, the bytes do not.",
        "",
        *measured_lines(points),
        "",
        f"Stages at {points[-1].profiles:,} profiles:",
        "",
        *stage_lines(points[-1]),
        "",
        "### A plan for 100M profiles",
        "",
        *plan_lines(points),
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench scaling", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("1M,4M"), help="lake sizes (default: 1M,4M)")
    parser.add_argument("--runs", type=int, default=1, help="measured runs per size (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "docs/benchmarks-report.md",
                        help="the report whose SCALING section is replaced (default: docs/benchmarks-report.md)")
    args = parser.parse_args(argv)
    if len(args.sizes) < 2:
        parser.error("--sizes needs two sizes at least, to check that the rates scale")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="export-jobs-scaling-") as tmp:
        base, events = Path(tmp), Path(tmp) / "events"
        with standalone_cluster(base / "cluster", workers=WORKERS, memory=WORKER_MEMORY) as cluster:
            spark = cluster_session(cluster, "export-jobs-bench-scaling", events)
            points = [measure(spark, base, events, size, args.runs) for size in sorted(args.sizes)]
            spark.stop()
    text = section(points, sys.argv[1:] if argv is None else argv)
    replace_section(args.out, HEADING, text)
    say(f"wrote the SCALING section of {args.out}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
