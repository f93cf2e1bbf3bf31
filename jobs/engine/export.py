"""The export engine: an ExportPlan executed as one lazy Spark plan and one commit (two when it evaluates).

load fragments ─▶ merge ─▶ (+ events) ─▶ (evaluate) ─▶ segment match ─▶ project ─▶ tag batches ─▶ Delta commit
                                               └──▶ changed memberships ─▶ segmentation dataset commit

Rejected fragments are counted by an observation of the same scan, the exported
profiles by one of the rows as they are written, and an evaluation's memberships
by one of the evaluated profiles (metrics.py). An evaluating job writes its two
commits from one computation of the evaluated profiles: the columns the commits
read are kept (persisted) between them. A retry that finds a commit already there
does not write it again, and reads the figures it needs back from the destination.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from jobs.engine.columns import DATASET, HAS_PROFILE, IDS, KEY_ID, KEY_NS, REJECT, segment_column
from jobs.engine.evaluation import changed_column, evaluate, flattened, unflattened, writeback_rows
from jobs.engine.events import EVENT_IDENTITIES, EVENTS, events_by_key, load_events
from jobs.engine.merge import changed_keys, load_fragments, merge_profiles
from jobs.engine.metrics import (
    ConsentCounters,
    ConsentCounts,
    EvaluatedCounts,
    EvaluationCounters,
    ExportCounters,
    ExportedCounts,
    exported_counts,
    observed,
    read_back,
)
from jobs.engine.mirror import MirrorCommit, mirror_counts, mirror_rows, predates_bookkeeping, write_mirror
from jobs.engine.privacy import not_suppressed
from jobs.engine.probe import FragmentProbe, probe_fragments, remember_namespaces
from jobs.engine.projection import projected_columns
from jobs.engine.segments import candidate_filter, qualifying, select_members, tag_batches
from jobs.engine.sink import already_committed, committed, write_batches, write_memberships
from jobs.engine.stitching import Components, restitched, stitched_components
from jobs.planner import ExportPlan
from jobs.spec import RejectedRecord, merge_leaves

REJECTED_EXAMPLES = 10
log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    counts: ExportedCounts
    rejected: int
    watermark: int | None  # latest _ingestTime read, in µs since the epoch (incremental schedules)
    rejected_examples: list[RejectedRecord] = field(default_factory=list)
    committed_now: bool = True
    evaluated: EvaluatedCounts | None = None
    graph: Components | None = None  # identityGraph pdg
    consent: ConsentCounts | None = None  # a plan with consent policies
    mirror: MirrorCommit | None = None  # a mirror destination: what the job's MERGE did


def profiles_of(fragments: DataFrame, plan: ExportPlan, events: DataFrame | None = None,
                candidates: Column | None = None, components: Components | None = None) -> DataFrame:
    """The merged profiles, with their events (and event counts) and, when the job evaluates,
    their evaluated memberships. `candidates`: merge only keys with a fragment where it holds
    (segments.candidate_filter); `components`: identityGraph pdg's, which key the records."""
    if components is not None:
        fragments = restitched(fragments.where(F.col(REJECT).isNull()), components)
    profiles = merge_profiles(fragments, plan, candidates)
    if plan.events is not None:
        assert events is not None, "a plan with events reads them"
        by_key = events_by_key(events, plan.events, identities=plan.empty_profiles, components=components)
        profiles = profiles.join(by_key, [KEY_NS, KEY_ID], "full_outer" if plan.empty_profiles else "left")
        if plan.empty_profiles:
            profiles = profiles.withColumn("identityMap", F.coalesce("identityMap", EVENT_IDENTITIES))
    return evaluate(profiles, plan) if plan.evaluation is not None else profiles


def output_columns(profiles: DataFrame, plan: ExportPlan) -> list[Column]:
    """identityMap, segmentMembership, the projected fields and the events: an exported row's values."""
    output = [F.col("identityMap"), F.col("segmentMembership"), *projected_columns(plan.projection)]
    if plan.events is not None and plan.events.projection is not None:
        none = F.array().cast(profiles.schema[EVENTS].dataType)
        output.append(F.coalesce(F.col(EVENTS), none).alias("events"))
    return output


def export_rows(profiles: DataFrame, plan: ExportPlan, counters: ExportCounters | None = None,
                consent: ConsentCounters | None = None) -> DataFrame:
    """The destination rows: `_batchId`, identityMap, segmentMembership, projected fields, events.

    `counters`: count the exported profiles on the way (metrics.ExportCounters); `consent`: the
    qualifying profiles that consent leaves out (metrics.ConsentCounters).
    """
    output = output_columns(profiles, plan)
    members = select_members(profiles, plan, consent.observe if consent is not None else None)
    if counters is not None:
        members = counters.observe(members)
    return tag_batches(members, plan, output)


def run_export(spark: SparkSession, plan: ExportPlan,
               known_namespaces: Callable[[], Iterable[str]] | None = None) -> ExportResult:
    """Runs the plan's export to its commits. `known_namespaces`: identity namespaces the caller has
    seen exported before, asked for only if the input is too small to probe (probe.probe_fragments)."""
    if plan.incremental and predates_bookkeeping(plan):
        log.info("job %s: the mirror predates its rows' hashes and namespaces: this job reads every profile, "
                 "so that it writes them into every row", plan.job_id)
        plan = replace(plan, from_ingest=None)
    components = stitched_components(spark, plan) if plan.stitching is not None else None
    fragments = load_fragments(spark, plan, changed_keys(spark, plan))
    unsuppressed = not_suppressed(plan.suppression_salt, plan.suppressed) if plan.suppressed else None
    events = load_events(spark, plan.events, unsuppressed) if plan.events is not None else None
    export_pending = not already_committed(plan)
    evaluation = plan.evaluation
    writeback_pending = evaluation is not None and evaluation.write_back and not committed(
        evaluation.writeback_path, evaluation.writeback_txn_app_id)
    result = None
    if export_pending or writeback_pending:
        result = write_observed(spark, plan, fragments, events, export_pending, writeback_pending, components,
                                known_namespaces)
    if result is None:
        result = recount(spark, plan, fragments, events, components)
    result.graph = components
    remember_namespaces(plan, result.counts.by_namespace)
    if result.rejected:
        records = fragments if events is None else fragments.unionByName(events, allowMissingColumns=True)
        result.rejected_examples = rejected_examples(records, plan.hashed_example_ids)
    return result


def committed_columns(profiles: DataFrame, plan: ExportPlan) -> list[str]:
    """The columns of the evaluated profiles that export_rows and writeback_rows read.

    Keeping only these between the two commits (and flattened: evaluation.flattened) is what
    makes the second commit cheap: building the cache costs in proportion to what it holds.
    """
    assert plan.evaluation is not None
    read = {KEY_NS, KEY_ID, "_ingestTime", HAS_PROFILE, "identityMap", EVENTS,
            *(changed_column(s.segment_id) for s in plan.evaluation.segments),
            *(leaf.column for leaf in merge_leaves(plan.projection)),
            *(segment_column(s.namespace, s.segment_id) for s in plan.segments),
            *(rule.leaf.column for rule in plan.consent)}
    return [c for c in profiles.columns if c in read]


def write_observed(
    spark: SparkSession, plan: ExportPlan, fragments: DataFrame, events: DataFrame | None,
    export_pending: bool = True, writeback_pending: bool = False, components: Components | None = None,
    known_namespaces: Callable[[], Iterable[str]] | None = None,
) -> ExportResult | None:
    """Writes what is pending of the job's commits and counts on the way: rejected records, the
    watermark, the exported profiles, the evaluated memberships. None if Delta skipped every
    write because another run of the job committed first, or if the writes read nothing of the
    inputs (an incremental job with nothing new): run_export then counts from the inputs."""
    # A mirror's counters are read from the mirror (mirror_counts), and an incremental mirror job merges
    # every changed key, candidate or not: a profile whose fragments all stopped qualifying (updated in
    # place, say) must reach the MERGE to leave the mirror. Such a job needs nothing of the probe.
    unprobed = plan.mirror and plan.incremental
    probe = FragmentProbe(None, ()) if unprobed else probe_fragments(fragments, plan, known_namespaces)
    counters = ExportCounters(plan, probe.namespaces)
    consent = ConsentCounters(plan) if plan.consent else None
    # The observations count on the same scan, and they also keep the optimizer from
    # pushing the REJECT filter below the projection that runs the identity lambdas
    # (it would inline them into the filter and run them once per reference).
    rejected = Observation(f"job-{plan.job_id}-rejected-fragments")
    fragments = fragments.observe(rejected, F.count(F.col(REJECT)).alias("n"),
                                  F.max(F.unix_micros("_ingestTime")).alias("watermark"))
    rejected_events = Observation(f"job-{plan.job_id}-rejected-events")
    if events is not None:
        events = events.observe(rejected_events, F.count(F.col(REJECT)).alias("n"))
    # Evaluation decides membership by expression, not by the fragments' memberships.
    candidates = None if plan.evaluation is not None else candidate_filter(probe.share, plan)
    profiles = profiles_of(fragments, plan, events, candidates, components)
    evaluation = EvaluationCounters(plan) if plan.evaluation is not None else None
    if evaluation is not None:
        profiles = evaluation.observe(profiles)
    both = export_pending and writeback_pending
    if both:
        kept = flattened(profiles.select(*committed_columns(profiles, plan)), plan)
        kept = kept.persist(StorageLevel.MEMORY_AND_DISK)
        profiles = unflattened(kept, plan)
    mirror = None
    try:
        if export_pending and plan.mirror:
            mirror = write_mirror(spark, mirror_rows(profiles, plan, output_columns(profiles, plan), consent), plan)
        elif export_pending:
            write_batches(export_rows(profiles, plan, counters, consent), plan)
        if writeback_pending:
            assert plan.evaluation is not None
            write_memberships(writeback_rows(profiles, plan.evaluation), plan.evaluation, plan.job_id)
    finally:
        if both:
            kept.unpersist()
    seen = observed(rejected)
    seen_events = observed(rejected_events) if events is not None else {"n": 0}
    if seen is None or seen_events is None:
        # An incremental job with nothing new: Spark pruned away the scans its observations watch.
        log.info("job %s: Delta skipped the write (another run of this job committed first), or the write read "
                 "nothing new; counting from the inputs", plan.job_id)
        return None
    count = seen["n"] + seen_events["n"]
    if plan.mirror:
        (counts, mirror), exported = mirror_counts(spark, plan, mirror), export_pending
    else:
        counts, exported = exported_counts(spark, counters), observed(counters.observation) is not None
    return ExportResult(counts, count, seen["watermark"], mirror=mirror,
                        committed_now=exported,
                        evaluated=evaluation.counts(profiles) if evaluation is not None else None,
                        consent=(consent.counts(None if export_pending else qualifying(profiles, plan))
                                 if consent is not None else None))


def recount(spark: SparkSession, plan: ExportPlan, fragments: DataFrame, events: DataFrame | None,
            components: Components | None = None) -> ExportResult:
    """The figures of a job whose commits an earlier run made, from the inputs and the destination."""
    row = fragments.agg(F.count(F.col(REJECT)).alias("n"), F.max(F.unix_micros("_ingestTime")).alias("w")).first()
    assert row is not None, "a global aggregation has one row"
    count = row["n"] + (events.where(F.col(REJECT).isNotNull()).count() if events is not None else 0)
    evaluated = consent = None
    if plan.evaluation is not None or plan.consent:
        profiles = profiles_of(fragments, plan, events, None, components)
        evaluated = EvaluationCounters(plan).counts(profiles) if plan.evaluation is not None else None
        consent = ConsentCounters(plan).counts(qualifying(profiles, plan)) if plan.consent else None
    if plan.mirror:
        counts, mirror = mirror_counts(spark, plan)
    else:
        counts, mirror = read_back(spark, plan), None
    return ExportResult(counts, count, row["w"], committed_now=False, evaluated=evaluated, consent=consent,
                        mirror=mirror)


def rejected_examples(records: DataFrame, hashed_ids: bool) -> list[RejectedRecord]:
    """A few rejected records, their identities hashed as spec.hashed_id does unless `hashed_ids` is off."""
    identities = F.col(IDS)
    if hashed_ids:
        identities = F.transform(identities, lambda i: F.struct(i["ns"].alias("ns"), F.concat(
            F.lit("sha256:"), F.substring(F.sha2(i["id"], 256), 1, 16)).alias("id")))
    rows = (
        records.where(F.col(REJECT).isNotNull())
        .select(DATASET, REJECT, F.to_json(F.struct(identities.alias("identities"), "_ingestTime")).alias("record"))
        .limit(REJECTED_EXAMPLES)
        .collect()
    )
    return [RejectedRecord(dataset_id=r[DATASET], reason=r[REJECT], record=r["record"]) for r in rows]
