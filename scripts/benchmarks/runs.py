"""The figures: the main comparison at one size, and the scaling points."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from benchmarks.duck import KeyCheck, compare_keys, run_duckdb
from benchmarks.floor import run_events_floor, run_floor
from benchmarks.handwritten import run_handwritten
from benchmarks.lake import Lake, make_lake
from benchmarks.memory import PeakMemory
from benchmarks.ours import define_segments, evaluated_segments_body, evaluation_body, job_body, ours, written_back
from benchmarks.rounds import Figure, Sample, Scenario, interleave
from benchmarks.settings import DUCKDB_THREADS, EVALUATED_SEGMENTS, SEGMENTS, TARGETS
from benchmarks.stitching import StitchPoint

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class Comparison:
    # by key: one, twenty, events, per_segment, consent, evaluated, written_back, floor, events_floor,
    # hand_one, hand_twenty, duck_one, duck_twenty
    figures: dict[str, Figure]
    keys: list[KeyCheck]
    memory: PeakMemory
    stitching: list[StitchPoint]  # the first at the comparison's size, then the scaling sizes

    def ratio(self, a: str, b: str) -> float:
        return self.figures[a].median / self.figures[b].median

    @property
    def job_samples(self) -> list[Sample]:
        return [sample for f in self.figures.values() if f.engine == "ours" for sample in f.samples]

    @property
    def overhead_s(self) -> float:
        """Median over all our measured runs of run_job's wall time minus profileExportTime."""
        return statistics.median(s.overhead_s for s in self.job_samples if s.overhead_s is not None)

    @property
    def record_overhead_s(self) -> float:
        """The same from the records alone: totalTime minus profileExportTime."""
        return statistics.median(s.record_overhead_s for s in self.job_samples if s.record_overhead_s is not None)

    def targets(self) -> dict[str, float]:
        """The measured value of each of TARGETS."""
        return {
            "ours / I/O floor, 1 segment": self.ratio("one", "floor"),
            "ours / hand-written PySpark, 1 segment": self.ratio("one", "hand_one"),
            "ours / hand-written PySpark, 20 segments": self.ratio("twenty", "hand_twenty"),
            "per-segment / combined, 20 segments": self.ratio("per_segment", "twenty"),
            "20 segments + events / (I/O floor + events floor)":
                self.figures["events"].median / (self.figures["floor"].median + self.figures["events_floor"].median),
            "evaluated / not evaluated, the same 20 segments": self.ratio("evaluated", "written_back"),
            "ours / DuckDB, 1 segment": self.ratio("one", "duck_one"),
            "ours / DuckDB, 20 segments": self.ratio("twenty", "duck_twenty"),
            "pdg / none, 20 segments (linked lake)": self.stitching[0].ratio,
            "consent / no consent, 20 segments": self.ratio("consent", "twenty"),
            "job overhead (s)": self.overhead_s,
        }

    def limited(self) -> list[tuple[str, float, float]]:
        """Each target's name, measured value and the most it may be."""
        return [(name, value, TARGETS[name]) for name, value in self.targets().items()]

    def comparisons(self) -> dict[str, float]:
        """Ratios reported beside the targets, with no target of their own."""
        return {"evaluated / the lake's own 20 segments": self.ratio("evaluated", "twenty")}


# The warm-up round runs the figures whose code the others share (the merge, the plain scans, the baselines'
# reads); the unmeasured evaluation before the rounds warms evaluation and the events' grouping. The
# events, per-segment and evaluated exports, a third of a 1M round's time, start measured: the median
# of the rounds absorbs a slower first run. The consent export is warmed too: its figure is a ratio to
# the 20-segment export held to 5%, and its first run took twice its warm time (a quick run, one round).
WARM_UP = ("one", "twenty", "consent", "floor", "events_floor", "hand_one", "hand_twenty", "duck_one", "duck_twenty")


def compare(spark: SparkSession, lake: Lake, runs: int, stitching: list[StitchPoint]) -> Comparison:
    memory = PeakMemory(spark)
    con = duckdb.connect()
    con.execute(f"SET threads = {DUCKDB_THREADS}")
    evaluated = define_segments(lake.deployment("definitions"))
    memberships = written_back(spark, lake, memory, evaluated)[1]
    scenarios = [
        ours(spark, lake, memory, "one", "ours, 1 segment", job_body(1)),
        ours(spark, lake, memory, "twenty", f"ours, {SEGMENTS} segments", job_body(SEGMENTS)),
        ours(spark, lake, memory, "events", f"ours, {SEGMENTS} segments + events", job_body(SEGMENTS, events=True)),
        ours(spark, lake, memory, "per_segment", f"ours, {SEGMENTS} segments, segmentPerBatch",
             job_body(SEGMENTS, per_segment=True)),
        ours(spark, lake, memory, "consent", f"ours, {SEGMENTS} segments, consent policy",
             job_body(SEGMENTS, consent=True)),
        ours(spark, lake, memory, "evaluated", f"ours, {EVALUATED_SEGMENTS} segments evaluated (10 with events)",
             evaluation_body(evaluated)),
        ours(spark, lake, memory, "written_back", f"ours, the {EVALUATED_SEGMENTS} evaluated segments, written back",
             evaluated_segments_body(evaluated), memberships),
        Scenario("floor", "I/O floor (Spark read + write)", "floor", lambda run: run_floor(spark, lake, run)),
        Scenario("events_floor", "events floor (Spark read + group by key + write)", "floor",
                 lambda run: run_events_floor(spark, lake, run)),
        Scenario("hand_one", "hand-written PySpark, 1 segment", "pyspark",
                 lambda run: run_handwritten(spark, lake, 1, run)),
        Scenario("hand_twenty", f"hand-written PySpark, {SEGMENTS} segments", "pyspark",
                 lambda run: run_handwritten(spark, lake, SEGMENTS, run)),
        Scenario("duck_one", "DuckDB, 1 segment", "duckdb", lambda run: run_duckdb(con, lake, 1, run)),
        Scenario("duck_twenty", f"DuckDB, {SEGMENTS} segments", "duckdb",
                 lambda run: run_duckdb(con, lake, SEGMENTS, run)),
    ]
    figures = interleave(scenarios, runs, warm_up=WARM_UP)
    keys = [compare_keys(con, figures[ours_key].name, figures[ours_key].last.output,
                         figures[other_key].name, figures[other_key].last.output)
            for ours_key, other_key in (("one", "hand_one"), ("twenty", "hand_twenty"),
                                        ("one", "duck_one"), ("twenty", "duck_twenty"))]
    con.close()
    return Comparison(figures, keys, memory, stitching)


@dataclass(frozen=True)
class ScalePoint:
    profiles: int
    one: Figure
    twenty: Figure
    python_mb: float
    jvm_mb: float

    def per_profile_us(self, figure: Figure) -> float:
        return figure.median / self.profiles * 1e6


def scale_point(spark: SparkSession, base: Path, profiles: int, runs: int) -> ScalePoint:
    lake = make_lake(spark, base / f"scale-{profiles}", profiles, events=False)
    memory = PeakMemory(spark)
    figures = interleave([
        ours(spark, lake, memory, "one", f"scaling {profiles:,}: 1 segment", job_body(1)),
        ours(spark, lake, memory, "twenty", f"scaling {profiles:,}: {SEGMENTS} segments", job_body(SEGMENTS)),
    ], runs)
    return ScalePoint(profiles, figures["one"], figures["twenty"], memory.python_mb, memory.jvm_mb)


