"""A preview's sample: the profiles whose key falls in the hash sample, merged whole and evaluated
against the previewed expression, counted, and the first matching ones shown. Nothing is written.

Under identityGraph none a key is one primary identity, so fragments and events are sampled before
the merge, and the merge shuffles only the sample. Under pdg a key is a component of the identity
graph: the graph is computed whole, and the sample is taken on the component keys (Spark pushes
that filter below the merge, onto the stitched fragments).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from jobs.engine.columns import KEY_ID, KEY_NS, segment_column
from jobs.engine.evaluation import NAMESPACE, qualified
from jobs.engine.events import load_events
from jobs.engine.export import profiles_of
from jobs.engine.merge import load_fragments
from jobs.engine.privacy import not_suppressed
from jobs.engine.projection import projected_columns
from jobs.engine.stitching import stitched_components
from jobs.planner import PREVIEW_SEGMENT, PreviewPlan

MATCH = "_match"


@dataclass
class PreviewResult:
    sampled: int  # profiles in the sample
    matched: int  # of them, those the expression matches
    profiles: list[dict[str, Any]] = field(default_factory=list)  # the first matching ones, by key


def in_sample(plan: PreviewPlan) -> Column:
    """The key's bucket of its xxhash64 is below the plan's threshold (spec.Sampling says so to users)."""
    return F.pmod(F.xxhash64(F.col(KEY_NS), F.col(KEY_ID)), F.lit(plan.buckets)) < F.lit(plan.threshold)


def run_preview(spark: SparkSession, plan: PreviewPlan) -> PreviewResult:
    export = plan.export
    sample = in_sample(plan) if plan.threshold < plan.buckets else None
    components = stitched_components(spark, export) if export.stitching is not None else None
    fragments = load_fragments(spark, export)
    keep = not_suppressed(export.suppression_salt, export.suppressed) if export.suppressed else None
    events = load_events(spark, export.events, keep) if export.events is not None else None
    if sample is not None and components is None:
        fragments = fragments.where(sample)
        events = events.where(sample) if events is not None else None
    profiles = profiles_of(fragments, export, events, components=components)
    if sample is not None and components is not None:
        profiles = profiles.where(sample)
    shown = [F.col("identityMap"), *projected_columns(export.projection)]
    flagged = profiles.select(KEY_NS, KEY_ID, qualified(F.col(segment_column(NAMESPACE, PREVIEW_SEGMENT))).alias(MATCH),
                              *shown).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = flagged.agg(F.count(F.lit(1)).alias("n"), F.count_if(F.col(MATCH)).alias("m")).first()
        assert counts is not None, "a global aggregation has one row"
        first = (flagged.where(F.col(MATCH)).orderBy(KEY_NS, KEY_ID).limit(plan.profiles)
                 .select(F.to_json(F.struct("identityMap", *[n.name for n in export.projection])).alias("profile"))
                 .collect())
    finally:
        flagged.unpersist()
    return PreviewResult(counts["n"], counts["m"], [json.loads(r["profile"]) for r in first])
