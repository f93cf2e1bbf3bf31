"""The export engine: an ExportPlan executed as one lazy Spark plan and one commit.

load fragments ─▶ merge ─▶ segment match ─▶ project ─▶ tag batches ─▶ Delta commit

Rejected fragments are counted by an observation of the same scan, and the
exported profiles by one of the rows as they are written (metrics.py); a retry
that finds its commit already in the destination reads the same figures back
from it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from jobs.engine.columns import DATASET, IDS, KEY_ID, KEY_NS, REJECT
from jobs.engine.events import EVENT_IDENTITIES, EVENTS, events_by_key, load_events
from jobs.engine.merge import load_fragments, merge_profiles
from jobs.engine.metrics import ExportCounters, ExportedCounts, observed, read_back
from jobs.engine.probe import probe_fragments
from jobs.engine.projection import projected_columns
from jobs.engine.segments import candidate_filter, select_members, tag_batches
from jobs.engine.sink import already_committed, write_batches
from jobs.model import RejectedRecord
from jobs.plan import ExportPlan

REJECTED_EXAMPLES = 10
log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    counts: ExportedCounts
    rejected: int
    watermark: int | None  # latest _ingestTime read, in µs since the epoch (incremental schedules)
    rejected_examples: list[RejectedRecord] = field(default_factory=list)
    committed_now: bool = True


def export_rows(
    fragments: DataFrame, plan: ExportPlan, events: DataFrame | None = None, candidates: Column | None = None,
    counters: ExportCounters | None = None,
) -> DataFrame:
    """The destination rows: `_batchId`, identityMap, segmentMembership, projected fields, events.

    `candidates`: merge only keys with a fragment where it holds (segments.candidate_filter).
    `counters`: count the exported profiles on the way (metrics.ExportCounters).
    """
    profiles = merge_profiles(fragments, plan, candidates)
    output = [F.col("identityMap"), F.col("segmentMembership"), *projected_columns(plan.projection)]
    if plan.events is not None:
        assert events is not None, "a plan with events reads them"
        by_key = events_by_key(events, plan.events, identities=plan.empty_profiles)
        profiles = profiles.join(by_key, [KEY_NS, KEY_ID], "full_outer" if plan.empty_profiles else "left")
        if plan.empty_profiles:
            profiles = profiles.withColumn("identityMap", F.coalesce("identityMap", EVENT_IDENTITIES))
        if plan.events.projection is not None:
            none = F.array().cast(by_key.schema[EVENTS].dataType)
            output.append(F.coalesce(F.col(EVENTS), none).alias("events"))
    members = select_members(profiles, plan)
    if counters is not None:
        members = counters.observe(members)
    return tag_batches(members, plan, output)


def run_export(spark: SparkSession, plan: ExportPlan) -> ExportResult:
    fragments = load_fragments(spark, plan)
    events = load_events(spark, plan.events) if plan.events is not None else None
    result = None if already_committed(plan) else write_observed(spark, plan, fragments, events)
    if result is None:
        result = recount(spark, plan, fragments, events)
    if result.rejected:
        records = fragments if events is None else fragments.unionByName(events, allowMissingColumns=True)
        result.rejected_examples = rejected_examples(records)
    return result


def write_observed(
    spark: SparkSession, plan: ExportPlan, fragments: DataFrame, events: DataFrame | None
) -> ExportResult | None:
    """Writes the job's batches and counts on the way: rejected records, the watermark, the
    exported profiles. None if Delta skipped the write because another run of the job
    committed first."""
    probe = probe_fragments(fragments, plan)  # before the fragments are observed
    counters = ExportCounters(plan, probe.namespaces)
    # The observations count on the same scan, and they also keep the optimizer from
    # pushing the REJECT filter below the projection that runs the identity lambdas
    # (it would inline them into the filter and run them once per reference).
    rejected = Observation(f"job-{plan.job_id}-rejected-fragments")
    fragments = fragments.observe(rejected, F.count(F.col(REJECT)).alias("n"),
                                  F.max(F.unix_micros("_ingestTime")).alias("watermark"))
    rejected_events = Observation(f"job-{plan.job_id}-rejected-events")
    if events is not None:
        events = events.observe(rejected_events, F.count(F.col(REJECT)).alias("n"))
    write_batches(export_rows(fragments, plan, events, candidate_filter(probe.share, plan), counters), plan)
    seen = observed(rejected)
    if seen is None:
        log.info("job %s: Delta skipped the write: another run of this job committed first", plan.job_id)
        return None
    count = seen["n"] + (rejected_events.get["n"] if events is not None else 0)
    return ExportResult(counters.counts() or read_back(spark, plan), count, seen["watermark"])


def recount(spark: SparkSession, plan: ExportPlan, fragments: DataFrame, events: DataFrame | None) -> ExportResult:
    """The figures of a job whose batches an earlier run committed, from the inputs and the destination."""
    row = fragments.agg(F.count(F.col(REJECT)).alias("n"), F.max(F.unix_micros("_ingestTime")).alias("w")).first()
    assert row is not None, "a global aggregation has one row"
    count = row["n"] + (events.where(F.col(REJECT).isNotNull()).count() if events is not None else 0)
    return ExportResult(read_back(spark, plan), count, row["w"], committed_now=False)


def rejected_examples(records: DataFrame) -> list[RejectedRecord]:
    rows = (
        records.where(F.col(REJECT).isNotNull())
        .select(DATASET, REJECT, F.to_json(F.struct(F.col(IDS).alias("identities"), "_ingestTime")).alias("record"))
        .limit(REJECTED_EXAMPLES)
        .collect()
    )
    return [RejectedRecord(dataset_id=r[DATASET], reason=r[REJECT], record=r["record"]) for r in rows]
