"""Segment matching on merged profiles and tagging rows with their batch ids."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.merge import HAS_PROFILE, segment_column
from jobs.plan import ExportPlan, SegmentSpec

BATCH = "_batchId"
BATCHES = "_batchIds"


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


def matched_batches(plan: ExportPlan) -> Column:
    """array<string> of the batch ids a profile belongs in (empty: not exported)."""
    if not plan.segments:
        return F.array(F.lit(plan.batch_ids[0]))
    tagged = [F.when(matched(plan, s), F.lit(s.batch_id)) for s in plan.segments]
    return F.array_distinct(F.filter(F.array(*tagged), lambda b: b.isNotNull()))


def select_members(profiles: DataFrame, plan: ExportPlan) -> DataFrame:
    """Profiles that qualify for the job, each with its array of batch ids.

    With empty profiles (keys with events only, HAS_PROFILE null) the merged
    `_ingestTime` bound does not apply to them: their events are already cut to
    the event window.
    """
    if plan.from_ingest is not None:
        later = F.col("_ingestTime") > F.lit(plan.from_ingest)
        if plan.empty_profiles:
            later = later | F.col(HAS_PROFILE).isNull()
        profiles = profiles.where(later)
    profiles = profiles.withColumn(BATCHES, matched_batches(plan))
    return profiles.where(F.size(BATCHES) > 0)


def one_row_per_batch(members: DataFrame) -> DataFrame:
    """Combined mode has one batch per row already; per-segment mode repeats a profile per batch."""
    return members.withColumn(BATCH, F.explode(BATCHES)).drop(BATCHES)
