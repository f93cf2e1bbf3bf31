"""A segment job's run: every profile merged and its segments evaluated in one pass, the changed
memberships written back in one commit, and the figures AEP's segment jobs report counted on the way
(docs/reference/segments.md#segment-jobs). Nothing is exported.

The evaluated profiles are counted by one Observation of the write-back's query: per segment and
status, profiles, and per segment the qualified profiles by identity namespace, for the namespaces
the probe saw (as the export's counters). A profile with another namespace, or a retry that finds the
write-back committed (Delta skips the write, so the observation never fires), costs one aggregation
of the evaluated profiles instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from jobs.engine.columns import segment_column
from jobs.engine.evaluation import NAMESPACE, qualified, writeback_rows
from jobs.engine.events import load_events
from jobs.engine.export import profiles_of
from jobs.engine.merge import load_fragments
from jobs.engine.metrics import EvaluatedCounts, EvaluationCounters, observed
from jobs.engine.privacy import not_suppressed
from jobs.engine.probe import probe_fragments, remember_namespaces
from jobs.engine.sink import committed, write_memberships
from jobs.engine.stitching import Components, stitched_components
from jobs.planner import ExportPlan

log = logging.getLogger(__name__)
WRITTEN_GRACE_S = 10.0


@dataclass
class SegmentationResult:
    evaluated: EvaluatedCounts
    total_profiles: int
    by_namespace: dict[str, dict[str, int]]  # segment id -> identity namespace -> qualified profiles
    committed_now: bool  # False: an earlier run of the job had written the memberships back
    graph: Components | None = None  # identityGraph pdg


class SegmentationCounters:
    """EvaluationCounters, and the profiles and the qualified ones per segment and namespace."""

    def __init__(self, plan: ExportPlan, namespaces: tuple[str, ...]):
        self.evaluation, self.namespaces = EvaluationCounters(plan), namespaces
        self.segments = self.evaluation.segments
        self.observation = Observation(f"job-{plan.job_id}-segmented")

    def _qualified(self, index: int) -> Column:
        return qualified(F.col(segment_column(NAMESPACE, self.segments[index])))

    def _measures(self) -> list[Column]:
        keys = F.map_keys("identityMap")
        known = F.array(*[F.lit(ns) for ns in self.namespaces]).cast("array<string>")
        measures = [F.count(F.lit(1)).alias("total"),
                    F.count_if(F.size(F.array_except(keys, known)) > 0).alias("unforeseen")]
        measures += [F.count_if(self._qualified(i) & F.array_contains(keys, ns)).alias(f"q{i}_{j}")
                     for i in range(len(self.segments)) for j, ns in enumerate(self.namespaces)]
        return measures

    def observe(self, profiles: DataFrame) -> DataFrame:
        return self.evaluation.observe(profiles).observe(self.observation, *self._measures())

    def counts(self, profiles: DataFrame) -> tuple[EvaluatedCounts, int, dict[str, dict[str, int]]]:
        seen: dict[str, Any] | None = observed(self.observation)
        if seen is None:
            row = profiles.agg(*self._measures()).first()
            assert row is not None, "a global aggregation has one row"
            seen = row.asDict()
        if seen["unforeseen"]:
            by_namespace = self._by_namespace(profiles)
        else:
            by_namespace = {s: {ns: seen[f"q{i}_{j}"] for j, ns in enumerate(self.namespaces) if seen[f"q{i}_{j}"]}
                            for i, s in enumerate(self.segments)}
        return self.evaluation.counts(profiles), seen["total"], by_namespace

    def _by_namespace(self, profiles: DataFrame) -> dict[str, dict[str, int]]:
        """One aggregation by namespace, for namespaces the probe did not see."""
        rows = (profiles.select(F.explode(F.map_keys("identityMap")).alias("ns"),
                                *[self._qualified(i).alias(f"q{i}") for i in range(len(self.segments))])
                .groupBy("ns").agg(*[F.count_if(F.col(f"q{i}")).alias(f"q{i}") for i in range(len(self.segments))])
                .collect())
        return {s: {r["ns"]: r[f"q{i}"] for r in sorted(rows, key=lambda r: r["ns"]) if r[f"q{i}"]}
                for i, s in enumerate(self.segments)}


def run_segmentation(spark: SparkSession, plan: ExportPlan,
                     known_namespaces: Callable[[], Iterable[str]] | None = None) -> SegmentationResult:
    """Runs a segment job's plan (planner.segment_job_plan) to its write-back commit."""
    evaluation = plan.evaluation
    assert evaluation is not None, "a segment job evaluates"
    components = stitched_components(spark, plan) if plan.stitching is not None else None
    fragments = load_fragments(spark, plan)
    keep = not_suppressed(plan.suppression_salt, plan.suppressed) if plan.suppressed else None
    events = load_events(spark, plan.events, keep) if plan.events is not None else None
    counters = SegmentationCounters(plan, probe_fragments(fragments, plan, known_namespaces).namespaces)
    profiles = profiles_of(fragments, plan, events, components=components)
    pending = not committed(evaluation.writeback_path, evaluation.writeback_txn_app_id)
    if pending:
        write_memberships(writeback_rows(counters.observe(profiles), evaluation), evaluation, plan.job_id)
    # The write ran here, so its observations fire, if a little after it returns on a busy driver; a
    # miss would cost two aggregations of every profile. None still: Delta skipped it (another run's).
    written = pending and observed(counters.observation, WRITTEN_GRACE_S) is not None
    if pending and not written:
        log.info("job %s: the write-back was another run's; counting the evaluated profiles again", plan.job_id)
    evaluated, total, by_namespace = counters.counts(profiles)
    remember_namespaces(plan, {ns for counts in by_namespace.values() for ns in counts})
    return SegmentationResult(evaluated, total, by_namespace, committed_now=written, graph=components)
