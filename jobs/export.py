"""The export engine: an ExportPlan executed as one lazy Spark plan and one commit.

load fragments ─▶ merge ─▶ segment match ─▶ project ─▶ tag batches ─▶ Delta commit

Rejected fragments are counted by an observation of the same scan; exported
counts come from the written rows, so a retry that finds its commit already in
the destination reports the same figures as the run that made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from jobs.events import EVENT_IDENTITIES, EVENTS, events_by_key, load_events
from jobs.merge import DATASET, IDS, KEY_ID, KEY_NS, REJECT, load_fragments, merge_profiles, primary_key
from jobs.model import RejectedRecord
from jobs.plan import ExportPlan
from jobs.projection import projected_columns
from jobs.segments import BATCH, candidate_filter, select_members, tag_batches
from jobs.sink import already_committed, write_batches

REJECTED_EXAMPLES = 10


@dataclass
class ExportResult:
    total: int
    by_namespace: dict[str, int]
    by_batch: dict[str, int]
    rejected: int
    watermark: int | None  # latest _ingestTime read, in µs since the epoch (incremental schedules)
    rejected_examples: list[RejectedRecord] = field(default_factory=list)
    committed_now: bool = True


def export_rows(
    fragments: DataFrame, plan: ExportPlan, events: DataFrame | None = None, candidates: Column | None = None
) -> DataFrame:
    """The destination rows: `_batchId`, identityMap, segmentMembership, projected fields, events.

    `candidates`: merge only keys with a fragment where it holds (segments.candidate_filter).
    """
    profiles = merge_profiles(fragments, plan, candidates)
    output = [F.col(BATCH), F.col("identityMap"), F.col("segmentMembership"), *projected_columns(plan.projection)]
    if plan.events is not None:
        by_key = events_by_key(events, plan.events, identities=plan.empty_profiles)
        profiles = profiles.join(by_key, [KEY_NS, KEY_ID], "full_outer" if plan.empty_profiles else "left")
        if plan.empty_profiles:
            profiles = profiles.withColumn("identityMap", F.coalesce("identityMap", EVENT_IDENTITIES))
        if plan.events.projection is not None:
            none = F.array().cast(by_key.schema[EVENTS].dataType)
            output.append(F.coalesce(F.col(EVENTS), none).alias("events"))
    return tag_batches(select_members(profiles, plan), plan).select(*output)


def run_export(spark: SparkSession, plan: ExportPlan) -> ExportResult:
    fragments = load_fragments(spark, plan)
    events = load_events(spark, plan.events) if plan.events is not None else None
    records = fragments if events is None else fragments.unionByName(events, allowMissingColumns=True)
    committed_now = not already_committed(plan)
    if committed_now:
        candidates = candidate_filter(fragments, plan)  # probes the fragments before they are observed
        # The observations count on the same scan, and they also keep the optimizer from
        # pushing the REJECT filter below the projection that runs the identity lambdas
        # (it would inline them into the filter and run them once per reference).
        rejected = Observation(f"job-{plan.job_id}-rejected-fragments")
        fragments = fragments.observe(rejected, F.count(F.col(REJECT)).alias("n"),
                                      F.max(F.unix_micros("_ingestTime")).alias("watermark"))
        rejected_events = Observation(f"job-{plan.job_id}-rejected-events")
        if events is not None:
            events = events.observe(rejected_events, F.count(F.col(REJECT)).alias("n"))
        write_batches(export_rows(fragments, plan, events, candidates), plan)
        seen = rejected.get
        count = seen["n"] + (rejected_events.get["n"] if events is not None else 0)
        watermark = seen["watermark"]
    else:
        row = fragments.agg(F.count(F.col(REJECT)).alias("n"), F.max(F.unix_micros("_ingestTime")).alias("w")).first()
        count = row["n"] + (events.where(F.col(REJECT).isNotNull()).count() if events is not None else 0)
        watermark = row["w"]
    total, by_namespace, by_batch = exported_counts(spark, plan)
    examples = rejected_examples(records) if count else []
    return ExportResult(total, by_namespace, by_batch, count, watermark, examples, committed_now)


def exported_counts(spark: SparkSession, plan: ExportPlan) -> tuple[int, dict[str, int], dict[str, int]]:
    """(distinct profiles, profiles per identity namespace, rows per batch) of the job's batches."""
    rows = (
        spark.read.format("delta").load(plan.destination_path)
        .where(F.col(BATCH).isin(list(plan.batch_ids)))
        .select(BATCH, primary_key(F.col("identityMap")).alias("key"),
                F.map_keys("identityMap").alias("namespaces"))
    )
    # A profile in several per-segment batches counts once; the null entry counts profiles.
    profiles = rows.dropDuplicates(["key"]) if plan.per_segment else rows
    counted = (
        profiles.select(F.explode(F.concat(F.array(F.lit(None).cast("string")), "namespaces")).alias("ns"))
        .groupBy("ns").count().collect()
    )
    by_namespace = {r["ns"]: r["count"] for r in counted if r["ns"] is not None}
    total = next((r["count"] for r in counted if r["ns"] is None), 0)
    if plan.per_segment:
        by_batch = {r[BATCH]: r["count"] for r in rows.groupBy(BATCH).count().collect()}
    else:
        by_batch = {plan.batch_ids[0]: total}  # one row per profile: no second read-back
    return total, dict(sorted(by_namespace.items())), {b: by_batch.get(b, 0) for b in plan.batch_ids}


def rejected_examples(records: DataFrame) -> list[RejectedRecord]:
    rows = (
        records.where(F.col(REJECT).isNotNull())
        .select(DATASET, REJECT, F.to_json(F.struct(F.col(IDS).alias("identities"), "_ingestTime")).alias("record"))
        .limit(REJECTED_EXAMPLES)
        .collect()
    )
    return [RejectedRecord(dataset_id=r[DATASET], reason=r[REJECT], record=r["record"]) for r in rows]
