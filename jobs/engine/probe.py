"""A look at the first fragments before the export's plan is fixed.

One small query over the first PROBE_FRAGMENTS fragments tells the
export two things it must decide before its one pass: which merge path fits the
job's segments (segments.candidate_filter), and which identity namespaces the
exported rows' counters should watch for (metrics.ExportCounters). Both are
estimates; a wrong one costs speed, never correctness.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.engine.columns import IDS
from jobs.engine.segments import any_segment
from jobs.planner import ExportPlan

PROBE_FRAGMENTS = 10_000


@dataclass(frozen=True)
class FragmentProbe:
    share: float | None  # of the fragments whose own memberships qualify; None without segments or fragments
    namespaces: tuple[str, ...]  # identity namespaces the fragments have, sorted


def probe_fragments(fragments: DataFrame, plan: ExportPlan) -> FragmentProbe:
    """Reads the identities and the requested memberships of the first fragments only."""
    namespaces = F.array_distinct(F.flatten(F.collect_set(F.array_distinct(F.col(IDS)["ns"]))))
    measures = [F.sort_array(namespaces).alias("namespaces")]
    if plan.segments:
        measures.append(F.avg(any_segment(plan).cast("double")).alias("share"))
    row = fragments.limit(PROBE_FRAGMENTS).agg(*measures).first()
    assert row is not None, "a global aggregation has one row"
    return FragmentProbe(row["share"] if plan.segments else None, tuple(row["namespaces"]))
