"""The exported rows' counters (docs/reference/job-record.md): distinct profiles, profiles per identity
namespace, rows per batch; and an evaluating job's memberships by segment and status.

They are counted from the rows the job writes, in the same pass, by an Observation
on the exported profiles (one row per profile, before per-segment batches repeat
them). An Observation needs its aggregates before the query runs, so it counts the
namespaces the probe saw (probe.py) and the rows that have any other: when there are
such rows, or when the write did not run, the counters are read back from the
job's batches in the destination instead, as a rerun of a committed job does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from jobs.engine.columns import BATCH, segment_column
from jobs.engine.evaluation import NAMESPACE
from jobs.engine.identities import profile_key
from jobs.engine.segments import consented, matched
from jobs.planner import ExportPlan

OBSERVATION_GRACE_S = 0.1

@dataclass(frozen=True)
class ExportedCounts:
    total: int
    by_namespace: dict[str, int]  # only namespaces some exported profile has, sorted
    by_batch: dict[str, int]  # every batch of the job, in the plan's order
    # (segment namespace, id) -> exported profiles that are its members, for the plan's counted_segments;
    # None when a combined batch was read back (its rows need not carry the memberships)
    by_segment: dict[tuple[str, str], int] | None


def observed(observation: Observation, grace_s: float = OBSERVATION_GRACE_S) -> dict[str, Any] | None:
    """The observation's metrics, or None if its query never ran, or ran without the observed part (or it
    was never attached).

    Delta skips a write whose txnAppId another run already committed, and then the
    observation never fires: PySpark's `get` would wait for ever. Spark completes an
    observation's future when the query that carries it ends; it is given a moment
    (OBSERVATION_GRACE_S, or `grace_s` where the caller knows its query ran), as Spark 4.0's `getOrEmpty`
    was, before it counts as never fired.
    """
    java = observation._jo
    if java is None:
        return None
    future = java.future()
    deadline = time.monotonic() + grace_s
    while not future.isCompleted():
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)
    if java.getRow().size() == 0:
        return None  # the query ran, but not the part it observes: Spark pruned it away, its input being empty
    return observation.get


class ExportCounters:
    """Counts a job's exported profiles while they are written."""

    def __init__(self, plan: ExportPlan, namespaces: tuple[str, ...]):
        self.plan, self.namespaces = plan, namespaces
        self.observation = Observation(f"job-{plan.job_id}-exported")

    def observe(self, members: DataFrame) -> DataFrame:
        """`members` (one row per exported profile, with identityMap) counted as it flows."""
        keys = F.map_keys("identityMap")
        known = F.array(*[F.lit(ns) for ns in self.namespaces]).cast("array<string>")
        measures: list[Column] = [
            F.count(F.lit(1)).alias("total"),
            F.count_if(F.size(F.array_except(keys, known)) > 0).alias("unforeseen"),
        ]
        measures += [F.count_if(F.array_contains(keys, ns)).alias(f"ns{i}") for i, ns in enumerate(self.namespaces)]
        measures += [F.count_if(matched(self.plan, s)).alias(f"segment{i}")
                     for i, s in enumerate(self.plan.counted_segments)]
        return members.observe(self.observation, *measures)

    def segment_counts(self) -> dict[tuple[str, str], int] | None:
        """Exported profiles per counted segment, or None if the write did not run."""
        seen = observed(self.observation)
        return None if seen is None else self._by_segment(seen)

    def _by_segment(self, seen: dict[str, Any]) -> dict[tuple[str, str], int]:
        return {(s.namespace, s.segment_id): seen[f"segment{i}"] for i, s in enumerate(self.plan.counted_segments)}

    def counts(self) -> ExportedCounts | None:
        """The counters, or None if the write did not run or a profile had an unforeseen namespace."""
        seen = observed(self.observation)
        if seen is None or seen["unforeseen"]:
            return None
        by_namespace = {ns: seen[f"ns{i}"] for i, ns in enumerate(self.namespaces) if seen[f"ns{i}"]}
        by_segment = self._by_segment(seen)
        if self.plan.per_segment:
            by_batch = {s.batch_id: seen[f"segment{i}"] for i, s in enumerate(self.plan.counted_segments)}
        else:
            by_batch = {self.plan.batch_ids[0]: seen["total"]}
        return ExportedCounts(seen["total"], by_namespace, by_batch, by_segment)


def exported_counts(spark: SparkSession, counters: ExportCounters) -> ExportedCounts:
    """The observed counters; else (the write did not run, or a profile had a namespace the observation
    did not count) read back from the destination, with the observed segment counts if there are any."""
    counts = counters.counts()
    if counts is not None:
        return counts
    back, by_segment = read_back(spark, counters.plan), counters.segment_counts()
    return back if by_segment is None else replace(back, by_segment=by_segment)


def read_back(spark: SparkSession, plan: ExportPlan) -> ExportedCounts:
    """The counters from the job's batches in the destination: one small aggregation, two per-segment."""
    rows = (
        spark.read.format("delta").load(plan.destination_path)
        .where(F.col(BATCH).isin(list(plan.batch_ids)))
        .select(BATCH, profile_key(F.col("identityMap"), plan.stitching is not None).alias("key"),
                F.map_keys("identityMap").alias("namespaces"))
    )
    return counted_rows(rows, plan)


def counted_rows(rows: DataFrame, plan: ExportPlan) -> ExportedCounts:
    """The counters of a job's rows: `_batchId`, the profile `key` and the identityMap's `namespaces` of each."""
    # A profile in several per-segment batches counts once; the null entry counts profiles.
    profiles = rows.dropDuplicates(["key"]) if plan.per_segment else rows
    counted = (
        profiles.select(F.explode(F.concat(F.array(F.lit(None).cast("string")), "namespaces")).alias("ns"))
        .groupBy("ns").count().collect()
    )
    by_namespace = {r["ns"]: r["count"] for r in counted if r["ns"] is not None}
    total = next((r["count"] for r in counted if r["ns"] is None), 0)
    by_segment = None
    if plan.per_segment:
        by_batch = {r[BATCH]: r["count"] for r in rows.groupBy(BATCH).count().collect()}
        by_segment = {(s.namespace, s.segment_id): by_batch.get(s.batch_id, 0) for s in plan.segments}
    else:
        by_batch = {plan.batch_ids[0]: total}  # one row per profile: no second read-back
    return ExportedCounts(total, dict(sorted(by_namespace.items())),
                          {b: by_batch.get(b, 0) for b in plan.batch_ids}, by_segment)


@dataclass(frozen=True)
class ConsentCounts:
    excluded: int
    by_segment: dict[tuple[str, str], int] | None  # per-segment jobs: (namespace, segment id) -> profiles


class ConsentCounters:
    """Counts the qualifying profiles that the plan's consent policies leave out, on the way."""

    def __init__(self, plan: ExportPlan):
        self.plan = plan
        self.observation = Observation(f"job-{plan.job_id}-consent")

    def _measures(self, within: Column | None = None) -> list[Column]:
        excluded = ~consented(self.plan) if within is None else within & ~consented(self.plan)
        measures = [F.count_if(excluded).alias("excluded")]
        if self.plan.per_segment:
            measures += [F.count_if(excluded & matched(self.plan, s)).alias(f"segment{i}")
                         for i, s in enumerate(self.plan.segments)]
        return measures

    def observe(self, members: DataFrame, within: Column | None = None) -> DataFrame:
        """`members`, the qualifying profiles before consent leaves some out (segments.select_members);
        `within`: the condition that makes a profile of `members` qualify, when they are not all qualifying."""
        return members.observe(self.observation, *self._measures(within))

    def counts(self, members: DataFrame | None = None) -> ConsentCounts | None:
        """The observed counts; if no query ran over them, one aggregation of `members` (None without)."""
        seen = observed(self.observation)
        if seen is None and members is not None:
            row = members.agg(*self._measures()).first()
            assert row is not None, "a global aggregation has one row"
            seen = row.asDict()
        if seen is None:
            return None
        by_segment = ({(s.namespace, s.segment_id): seen[f"segment{i}"] for i, s in enumerate(self.plan.segments)}
                      if self.plan.per_segment else None)
        return ConsentCounts(seen["excluded"], by_segment)


@dataclass(frozen=True)
class EvaluatedCounts:
    segmented: dict[str, int]  # segment id -> profiles realized or existing after the evaluation
    by_status: dict[str, dict[str, int]]  # segment id -> status -> profiles


class EvaluationCounters:
    """Counts the evaluated memberships of every merged profile (exported or not), on the way."""

    STATUSES = ("realized", "existing", "exited")

    def __init__(self, plan: ExportPlan):
        assert plan.evaluation is not None
        self.segments = [s.segment_id for s in plan.evaluation.segments]
        self.observation = Observation(f"job-{plan.job_id}-evaluated")

    def _measures(self) -> list[Column]:
        return [F.count_if(F.col(segment_column(NAMESPACE, segment))["status"] == status).alias(f"s{i}_{status}")
                for i, segment in enumerate(self.segments) for status in self.STATUSES]

    def observe(self, profiles: DataFrame) -> DataFrame:
        return profiles.observe(self.observation, *self._measures())

    def counts(self, profiles: DataFrame) -> EvaluatedCounts:
        """The observed figures; when no query ran over the profiles (both commits were already
        there), one aggregation of `profiles` instead."""
        seen = observed(self.observation)
        if seen is None:
            row = profiles.agg(*self._measures()).first()
            assert row is not None, "a global aggregation has one row"
            seen = row.asDict()
        by_status = {segment: {status: seen[f"s{i}_{status}"] for status in self.STATUSES}
                     for i, segment in enumerate(self.segments)}
        segmented = {segment: counts["realized"] + counts["existing"] for segment, counts in by_status.items()}
        return EvaluatedCounts(segmented, by_status)
