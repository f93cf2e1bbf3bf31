"""A look at the first fragments before the export's plan is fixed.

One small query over the first PROBE_FRAGMENTS fragments tells the
export two things it must decide before its one pass: which merge path fits the
job's segments (segments.candidate_filter), and which identity namespaces the
exported rows' counters should watch for (metrics.ExportCounters). Both are
estimates; a wrong one costs speed, never correctness.

A small input (at most merge.SMALL_INPUT fragments by the Delta logs' statistics) is not
probed: the probe's query would be a good share of a small job's time, and its merge is
quick either way, so it merges every key. Its counters watch for the namespaces that
earlier exports of the same datasets in this process counted (remember_namespaces), or,
in a process that has not exported them yet, those the caller knows of (the runner: its
tenant's recent job records). A namespace none of them saw costs a read-back of the
job's rows instead (metrics.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.engine.columns import IDS
from jobs.engine.merge import merges_changed_keys, small_input
from jobs.engine.segments import any_segment
from jobs.planner import ExportPlan

PROBE_FRAGMENTS = 10_000
# Namespaces that exports in this process counted, by the profile datasets they read.
_seen_namespaces: dict[tuple[str, ...], frozenset[str]] = {}


@dataclass(frozen=True)
class FragmentProbe:
    # Of the fragments whose own memberships qualify; None without segments or fragments, or unprobed.
    share: float | None
    namespaces: tuple[str, ...]  # identity namespaces the fragments have, sorted


def _datasets(plan: ExportPlan) -> tuple[str, ...]:
    return tuple(sorted(source.path for source in plan.sources))


def remember_namespaces(plan: ExportPlan, namespaces: Iterable[str]) -> None:
    """Namespaces an export of the plan's datasets counted, for the next small export's counters."""
    key = _datasets(plan)
    _seen_namespaces[key] = _seen_namespaces.get(key, frozenset()) | frozenset(namespaces)


def probe_fragments(fragments: DataFrame, plan: ExportPlan,
                    known_namespaces: Callable[[], Iterable[str]] | None = None) -> FragmentProbe:
    """Reads the identities and the requested memberships of the first fragments only; for a
    small input, reads nothing (see above): `known_namespaces` is asked only then, and only if no
    export of this process counted the plan's datasets yet. An incremental job that merges its changed
    keys only (merge.merges_changed_keys) reads as a small input too: its input is as small as its
    change, and its first fragments come only after a scan of the lake's identities."""
    if small_input(plan) or merges_changed_keys(plan):
        key = _datasets(plan)
        if key not in _seen_namespaces and known_namespaces is not None:
            remember_namespaces(plan, known_namespaces())
        return FragmentProbe(None, tuple(sorted(_seen_namespaces.get(key, ()))))
    # A limit the driver collects scans the first split only, and more only if it falls short; a limit
    # under an aggregation opened every split and shuffled them (two Spark jobs, about half a second more
    # at 200k profiles). The rows are small: each fragment's namespaces and one flag.
    rows = fragments.select(F.array_distinct(F.col(IDS)["ns"]).alias("namespaces"),
                            any_segment(plan).alias("qualifies")).limit(PROBE_FRAGMENTS).collect()
    namespaces = tuple(sorted({ns for row in rows for ns in row["namespaces"] or ()}))
    share = sum(bool(row["qualifies"]) for row in rows) / len(rows) if plan.segments and rows else None
    return FragmentProbe(share, namespaces)
