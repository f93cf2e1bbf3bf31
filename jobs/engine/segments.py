"""Segment matching on merged profiles and tagging rows with their batch ids."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.engine.columns import BATCH, HAS_PROFILE, segment_column
from jobs.engine.merge import without_nulls
from jobs.planner import ExportPlan, SegmentSpec

log = logging.getLogger(__name__)


def qualifies(
    membership: Column, statuses: tuple[str, ...], start: datetime | None, end: datetime | None
) -> Column:
    """The membership exists, has an allowed status and qualified within [start, end]."""
    condition = membership.isNotNull() & membership["status"].isin(list(statuses))
    qualified = membership["lastQualificationTime"]
    if start is not None:
        condition &= qualified >= F.lit(start)
    if end is not None:
        condition &= qualified <= F.lit(end)
    return F.coalesce(condition, F.lit(False))


def matched(plan: ExportPlan, segment: SegmentSpec) -> Column:
    membership = F.col(segment_column(segment.namespace, segment.segment_id))
    return qualifies(membership, segment.statuses, plan.qualified_from, plan.qualified_to)


def consented(plan: ExportPlan) -> Column:
    """The merged profile meets every consent policy of the plan (docs/reference/privacy.md): its
    consent attribute holds an allowed value, or it has none and the policy includes missing values."""
    allowed = F.lit(True)
    for rule in plan.consent:
        value = F.col(rule.leaf.column)
        allowed &= F.coalesce(value.isin(list(rule.policy.allowed_values)), F.lit(rule.policy.missing == "include"))
    return allowed


def any_segment(plan: ExportPlan) -> Column:
    """The profile qualifies for at least one requested segment (every profile if none is named)."""
    if not plan.segments:
        return F.lit(True)
    return reduce(lambda a, b: a | b, [matched(plan, s) for s in plan.segments])


# A job whose segments take in at most this share of the fragments merges only its
# candidate keys (merge_profiles). Measured at 1M profiles with the sort aggregation
# (docs/performance.md#selective-jobs-merge-only-candidate-keys): faster for 1 segment, whose
# members are a small share of the fragments; slower for 20 segments, where most qualify.
NARROW_SHARE = 0.25


def is_narrow(share: float | None) -> bool:
    return share is not None and share <= NARROW_SHARE


def candidate_filter(share: float | None, plan: ExportPlan) -> Column | None:
    """The fragment condition for merge_profiles' `candidates` when the job is selective, else None.

    `share`: of the first fragments whose own memberships qualify (probe.probe_fragments).
    """
    if share is None:
        return None
    narrow = is_narrow(share)
    log.info("job %s: %.1f%% of the first fragments qualify; merging %s", plan.job_id, 100 * share,
             "only keys that may qualify" if narrow else "every key")
    return any_segment(plan) if narrow else None


def qualifying(profiles: DataFrame, plan: ExportPlan) -> DataFrame:
    """Profiles that qualify for the job, before its consent policies."""
    return changed_profiles(profiles, plan).where(any_segment(plan))


def changed_profiles(profiles: DataFrame, plan: ExportPlan) -> DataFrame:
    """An incremental job's profiles with a fragment ingested after `from_ingest`; every profile otherwise.

    With empty profiles (keys with events only, HAS_PROFILE null) the merged `_ingestTime` bound does
    not apply to them: their events are already cut to the event window.
    """
    if plan.from_ingest is None:
        return profiles
    later = F.col("_ingestTime") > F.lit(plan.from_ingest)
    if plan.empty_profiles:
        later = later | F.col(HAS_PROFILE).isNull()
    return profiles.where(later)


def select_members(profiles: DataFrame, plan: ExportPlan,
                   before_consent: Callable[[DataFrame], DataFrame] | None = None) -> DataFrame:
    """Profiles that qualify for the job and that its consent policies allow. `before_consent`: applied
    to the qualifying profiles before consent leaves some out (metrics.ConsentCounters.observe)."""
    members = qualifying(profiles, plan)
    if not plan.consent:
        return members
    if before_consent is not None:
        members = before_consent(members)
    return members.where(consented(plan))


def tag_batches(members: DataFrame, plan: ExportPlan, columns: list[Column]) -> DataFrame:
    """`_batchId` and `columns` of each member: the combined batch, or one row per segment batch it matches.

    The columns are computed once per member, before per-segment rows repeat them.
    """
    if not plan.per_segment:
        return members.select(F.lit(plan.batch_ids[0]).alias(BATCH), *columns)
    tagged = F.array(*[F.when(matched(plan, s), F.lit(s.batch_id)) for s in plan.segments])
    once = members.select(without_nulls(tagged, "string").alias(BATCH), *columns)
    # Every member matches a segment, so explode_outer adds no null rows; plain explode
    # would make the optimizer infer a size(...) > 0 filter whose constraint propagation
    # with the members' OR of segment conditions grows exponentially with the segments
    # (a 20-segment plan ran the driver out of memory while being optimized).
    return once.select(F.explode_outer(BATCH).alias(BATCH), *[c for c in once.columns if c != BATCH])
