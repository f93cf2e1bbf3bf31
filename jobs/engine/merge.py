"""Profile fragments → merged profiles, in one aggregation (docs/design.md#one-scan-one-shuffle).

Each fragment gets its profile key (its one primary identity) and a rank once;
then a single groupBy by key takes, for every leaf attribute and every requested
segment membership, the non-null value with the highest rank (`max_by` over a
rank that is null where the value is null, so a null never wins).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.engine.columns import (
    CANDIDATE,
    CHANGED,
    DATASET,
    FLAGGED,
    HAS_PROFILE,
    IDS,
    KEY_ID,
    KEY_NS,
    MEMBERS,
    MEMBERSHIP,
    MEMBERSHIP_MAP,
    MEMBERSHIPS,
    RANK,
    REJECT,
    segment_column,
)
from jobs.engine.conform import column_as
from jobs.engine.identities import (
    flagged_primary,
    identity_list,
    identity_map,
    key_columns,
    key_is_primary,
    primary_key_columns,
    with_identities,
)
from jobs.engine.inputs import read_source, union_all
from jobs.engine.privacy import not_suppressed
from jobs.planner import ExportPlan, ProfileSource

# Measured with scripts/bench small: at 5,000 profiles the probe cost about a second of a warm job, and
# finding an incremental job's changed keys first about a second and a half (docs/performance.md#small-jobs).
SMALL_INPUT = 100_000


def keyed_fragments(
    df: DataFrame, source: ProfileSource, plan: ExportPlan, keys: DataFrame | None = None
) -> DataFrame:
    """One dataset's fragments with key, rank and the leaves and memberships the plan needs. `keys`: an
    incremental job's changed keys (changed_keys): of the good fragments, only theirs."""
    df = readable(df, plan)
    ingest = F.col("_ingestTime")
    rank = ingest if plan.merge == "timestampOrdered" else F.struct(
        F.lit(-source.precedence).alias("precedence"), ingest.alias("ingestTime")
    )
    values = [rank.alias(RANK), ingest.alias("_ingestTime")]
    values += [column_as(df, leaf.path, leaf.type).alias(leaf.column) for leaf in plan.leaves]
    has_memberships = "segmentMembership" in df.columns
    for namespace, segment_id in plan.merged_segment_refs:
        value = (
            F.col("segmentMembership").getItem(namespace).getItem(segment_id) if has_memberships
            else F.lit(None)
        )
        values.append(value.cast(MEMBERSHIP).alias(segment_column(namespace, segment_id)))
    if not plan.segments:
        value = F.col("segmentMembership") if has_memberships else F.lit(None)
        values.append(value.cast(MEMBERSHIP_MAP).alias("segmentMembership"))
    dataset = F.lit(source.dataset_id).alias(DATASET)
    if keys is None:
        return with_identities(df).select(dataset, *key_columns(plan.stitching is not None), *values)
    # Every fragment is keyed first, without listing its identities, and the good fragments of other keys
    # are dropped before their identities, leaves and memberships are computed: for a small change, most
    # of what keying them all cost. Rejected fragments stay, to be counted.
    keyed = df.select("*", *primary_key_columns()).join(
        keys.select(KEY_NS, KEY_ID, F.lit(True).alias(CHANGED)), [KEY_NS, KEY_ID], "left")
    kept = keyed.where(F.col(REJECT).isNotNull() | F.col(CHANGED).isNotNull())
    return with_identities(kept).select(dataset, REJECT, KEY_NS, KEY_ID, identity_list().alias(IDS), *values)


def readable(df: DataFrame, plan: ExportPlan) -> DataFrame:
    """A dataset's fragments the job reads: those ingested before its `as_of` (a replay), not suppressed."""
    if plan.as_of is not None:
        df = df.where(F.col("_ingestTime") < F.lit(plan.as_of))
    if plan.suppressed:
        df = df.where(not_suppressed(plan.suppression_salt, plan.suppressed))
    return df


def load_fragments(spark: SparkSession, plan: ExportPlan, keys: DataFrame | None = None) -> DataFrame:
    """All sources' keyed fragments, bad ones included (REJECT says why). `keys`: of the good fragments,
    only these keys' (changed_keys)."""
    return union_all([
        keyed_fragments(read_source(spark, s), s, plan, keys)
        for s in plan.sources
    ])


def changed_keys(spark: SparkSession, plan: ExportPlan) -> DataFrame | None:
    """An incremental job's keys with a fragment ingested after `from_ingest`, when merging those keys
    only gives its profiles: not with keys that have only events (empty profiles: an unchanged profile's
    events would make it one), nor when the job evaluates (its write-back covers every profile), nor
    under pdg (a key is a component's only after stitching); and when it pays: not for a small input,
    whose every key merges faster than its changed keys are found and joined. None: merge every key
    (segments.changed_profiles then keeps the changed profiles).

    Reading them costs a scan of the identities of the newest files only (Delta skips the others by
    their `_ingestTime` statistics); load_fragments then keeps only these keys' fragments.
    """
    if not merges_changed_keys(plan):
        return None
    later = F.col("_ingestTime") > F.lit(plan.from_ingest)
    return union_all([
        readable(read_source(spark, s), plan).where(later).select(*primary_key_columns())
        .where(F.col(REJECT).isNull()).select(KEY_NS, KEY_ID)
        for s in plan.sources
    ]).distinct()


def merges_changed_keys(plan: ExportPlan) -> bool:
    """Whether the job merges only the keys changed since its watermark (changed_keys says when)."""
    return (plan.incremental and not plan.empty_profiles and plan.evaluation is None and plan.stitching is None
            and not small_input(plan))


def small_input(plan: ExportPlan) -> bool:
    """At most SMALL_INPUT fragments, by the Delta logs' statistics (read while planning): merging every
    key costs less than looking first, whether with the probe or for an incremental job's changed keys."""
    return plan.fragments is not None and plan.fragments <= SMALL_INPUT


def _latest(column: str) -> Column:
    return F.max_by(F.col(column), F.when(F.col(column).isNotNull(), F.col(RANK))).alias(column)


def merge_profiles(fragments: DataFrame, plan: ExportPlan, candidates: Column | None = None) -> DataFrame:
    """Good fragments grouped by key: one row per profile, leaves and memberships merged.

    With `candidates`, a condition on one fragment, only keys with at least one
    fragment where it holds are merged (all of their fragments). A profile can
    qualify for a segment only if one of its fragments' memberships does, so a
    selective job aggregates a few keys instead of all of them; the window reuses
    the shuffle by key the aggregation needs, so it costs a sort, not a scan.
    """
    aggregates = [
        F.max("_ingestTime").alias("_ingestTime"),
        F.sort_array(F.array_distinct(F.flatten(F.collect_list(IDS)))).alias(IDS),
    ]
    if plan.stitching is not None:
        # Stitched fragments carry their component's identities (one value per key) and their flags.
        aggregates += [F.max(MEMBERS).alias(MEMBERS),
                       F.array_distinct(F.flatten(F.collect_list(FLAGGED))).alias(FLAGGED)]
    aggregates += [_latest(leaf.column) for leaf in plan.leaves]
    aggregates += [_latest(segment_column(ns, sid)) for ns, sid in plan.merged_segment_refs]
    if not plan.segments:
        aggregates.append(
            F.collect_list(F.when(F.col("segmentMembership").isNotNull(),
                                  F.struct(F.col(RANK).alias("rank"), F.col("segmentMembership").alias("m"))))
            .alias(MEMBERSHIPS)
        )
    good = fragments.where(F.col(REJECT).isNull())
    if candidates is not None:
        per_key = F.max(candidates).over(Window.partitionBy(KEY_NS, KEY_ID))
        good = good.withColumn(CANDIDATE, per_key).where(F.col(CANDIDATE)).drop(CANDIDATE)
    else:
        # The window leaves its rows clustered and sorted by key; without it, do the same
        # here, so that the sort aggregation (jobs.engine.session) sorts once, after the shuffle,
        # and both of its phases stream over that order.
        good = good.repartition(KEY_NS, KEY_ID).sortWithinPartitions(KEY_NS, KEY_ID)
    merged = good.groupBy(KEY_NS, KEY_ID).agg(*aggregates)
    merged = merged.withColumn(HAS_PROFILE, F.lit(True))
    merged = merged.withColumn("identityMap", merged_identity_map(plan))
    if plan.segments:
        return merged.withColumn("segmentMembership", requested_memberships(plan.segment_refs))
    return merged.withColumn("segmentMembership", latest_memberships(F.col(MEMBERSHIPS)))


def merged_identity_map(plan: ExportPlan) -> Column:
    """identityGraph none: the fragments' identities, the key the one primary; pdg: every identity of
    the component, primary where a fragment ingested it as primary."""
    if plan.stitching is None:
        return identity_map(F.col(IDS), key_is_primary(F.col(KEY_NS), F.col(KEY_ID)))
    return identity_map(F.coalesce(F.col(MEMBERS), F.col(IDS)), flagged_primary(F.col(FLAGGED)))


def without_nulls(values: Column, element_type: str) -> Column:
    """`values` without its null elements (and without repeats, which callers never have).

    `array_except(values, [null])` instead of a lambda `filter`: Spark evaluates a
    higher-order function, with its arguments, outside generated code.
    """
    return F.array_except(values, F.array(F.lit(None).cast(element_type)))


def _present(entries: list[tuple[str, Column]]) -> Column:
    """map<string, membership> of the entries whose membership is not null."""
    present = F.array(*[F.when(v.isNotNull(), F.struct(F.lit(k).alias("k"), v.alias("v"))) for k, v in entries])
    return F.map_from_entries(without_nulls(present, f"struct<k: string, v: {MEMBERSHIP}>"))


def requested_memberships(refs: list[tuple[str, str]]) -> Column:
    """{ns: {segment: membership}} keeping only memberships that exist; null if none does.

    A job's segments are nearly always of one namespace: its map is then built directly,
    without map_concat, which copies every entry again and checks the keys once more
    (docs/performance.md#the-requested-memberships-map).
    """
    by_namespace: dict[str, list[tuple[str, Column]]] = {}
    for namespace, segment_id in refs:
        by_namespace.setdefault(namespace, []).append(
            (segment_id, F.col(segment_column(namespace, segment_id)))
        )
    maps = [(namespace, _present(members)) for namespace, members in by_namespace.items()]
    if len(maps) == 1:
        [(namespace, inner)] = maps
        return F.when(F.size(inner) > 0, F.create_map(F.lit(namespace), inner))
    none = F.create_map().cast(MEMBERSHIP_MAP)
    result = F.map_concat(*[F.when(F.size(inner) > 0, F.create_map(F.lit(namespace), inner)).otherwise(none)
                            for namespace, inner in maps])
    return F.when(F.size(result) > 0, result)


def latest_memberships(ranked: Column) -> Column:
    """Merge whole membership maps per (namespace, segment): the highest rank wins.

    Used only when a job names no segments; per profile this is a small array.
    """
    entries = F.flatten(F.transform(ranked, lambda f: F.flatten(F.transform(
        F.map_entries(f["m"]),
        lambda n: F.transform(
            F.filter(F.map_entries(n["value"]), lambda s: s["value"].isNotNull()),
            lambda s: F.struct(f["rank"].alias("rank"), n["key"].alias("ns"), s["key"].alias("seg"),
                               s["value"].alias("m")),
        ),
    ))))
    newest_first = F.array_sort(entries, lambda a, b: F.when(a["rank"] > b["rank"], -1)
                                .when(a["rank"] < b["rank"], 1).otherwise(0))
    refs = F.transform(newest_first, lambda e: F.struct(e["ns"], e["seg"]))
    winners = F.filter(
        newest_first, lambda e, i: F.array_position(refs, F.struct(e["ns"], e["seg"])) == i + 1
    )
    namespaces = F.array_distinct(F.transform(winners, lambda e: e["ns"]))
    result = F.map_from_entries(F.transform(namespaces, lambda ns: F.struct(
        ns.alias("k"),
        F.map_from_entries(F.transform(
            F.filter(winners, lambda e: e["ns"] == ns), lambda e: F.struct(e["seg"], e["m"])
        )).alias("v"),
    )))
    return F.when(F.size(result) > 0, result)
