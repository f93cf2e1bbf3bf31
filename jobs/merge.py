"""Profile fragments → merged profiles, in one aggregation (DESIGN.md).

Each fragment gets its profile key (its one primary identity) and a rank once;
then a single groupBy by key takes, for every leaf attribute and every requested
segment membership, the non-null value with the highest rank (`max_by` over a
rank that is null where the value is null, so a null never wins).
"""

from __future__ import annotations

import json
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DataType, MapType, StructType

from jobs.plan import ExportPlan, ProfileSource
from jobs.schema import JsonType, Leaf

KEY_NS, KEY_ID = "_keyNs", "_keyId"
RANK, IDS, REJECT, DATASET = "_rank", "_ids", "_reject", "_datasetId"
IDENTITIES = "_identities"  # a record's identities with their primary flags, see with_identities
IDENTITY = "struct<ns: string, id: string>"
CANDIDATE = "_candidate"  # some fragment of the key may make it qualify, see merge_profiles
HAS_PROFILE = "_hasProfile"  # true on merged profiles; null on keys that only have events
MEMBERSHIPS = "_memberships"  # all memberships, ranked, when a job names no segments
MEMBERSHIP = "struct<status: string, lastQualificationTime: timestamp>"
MEMBERSHIP_MAP = f"map<string, map<string, {MEMBERSHIP}>>"


def spark_type(t: JsonType) -> DataType:
    wrapper = {"type": "struct", "fields": [{"name": "v", "type": t, "nullable": True, "metadata": {}}]}
    return StructType.fromJson(wrapper).fields[0].dataType


def segment_column(namespace: str, segment_id: str) -> str:
    return "__seg__" + json.dumps([namespace, segment_id])


def conform(col: Column, have: DataType, want: DataType) -> Column:
    """`col` of type `have` as type `want`, filling fields that `have` lacks with nulls.

    Datasets may differ in nested fields; the merged schema is their union by name.
    """
    if have.simpleString() == want.simpleString():
        return col
    if isinstance(have, StructType) and isinstance(want, StructType):
        present = {f.name: f.dataType for f in have.fields}
        fields = [
            (conform(col[f.name], present[f.name], f.dataType) if f.name in present
             else F.lit(None).cast(f.dataType)).alias(f.name)
            for f in want.fields
        ]
        return F.when(col.isNotNull(), F.struct(*fields))
    if isinstance(have, ArrayType) and isinstance(want, ArrayType):
        return F.transform(col, lambda x: conform(x, have.elementType, want.elementType))
    if isinstance(have, MapType) and isinstance(want, MapType):
        return F.transform_values(col, lambda _, v: conform(v, have.valueType, want.valueType))
    return col.cast(want)


def _lookup(df: DataFrame, path: tuple[str, ...]) -> tuple[Column, DataType] | None:
    """The column at a nested path of df, with its type, or None if df lacks it."""
    t: DataType = df.schema
    col: Column | None = None
    for name in path:
        if not isinstance(t, StructType) or name not in t.fieldNames():
            return None
        col = F.col(name) if col is None else col[name]
        t = t[name].dataType
    return col, t


def identities(identity_map: Column) -> Column:
    """array<struct<ns, id, primary>> of every identity in an identityMap (no flag: not primary)."""
    return F.flatten(F.transform(
        F.map_entries(identity_map),
        lambda e: F.transform(e["value"], lambda i: F.struct(
            e["key"].alias("ns"), i["id"].alias("id"), F.coalesce(i["primary"], F.lit(False)).alias("primary"),
        )),
    ))


def primary_key(identity_map: Column) -> Column:
    """struct<ns, id, primary> of the first primary identity (null if none)."""
    return F.get(F.filter(identities(identity_map), lambda i: i["primary"]), 0)


def with_identities(df: DataFrame) -> DataFrame:
    """df plus IDENTITIES, in a projection of its own.

    The key, the rejection reason, the identities and every filter the optimizer
    pushes down read it; in one select Spark would run the lambdas once for each.
    """
    return df.select("*", identities(F.col("identityMap")).alias(IDENTITIES))


def key_columns() -> list[Column]:
    """REJECT, KEY_NS, KEY_ID and IDS from IDENTITIES, with plain array functions (generated code)."""
    flags = F.col(IDENTITIES)["primary"]
    primaries = F.size(flags) - F.size(F.array_remove(flags, True))
    key = F.get(F.col(IDENTITIES), F.array_position(flags, True).cast("int") - 1)
    ids = F.arrays_zip(F.col(IDENTITIES)["ns"], F.col(IDENTITIES)["id"]).cast(f"array<{IDENTITY}>")
    return [rejection_reason(primaries).alias(REJECT), key["ns"].alias(KEY_NS), key["id"].alias(KEY_ID), ids.alias(IDS)]


def rejection_reason(primaries: Column) -> Column:
    """Why a record with this many primary identities is rejected; null if it is not."""
    count = F.coalesce(primaries, F.lit(0))
    return (
        F.when(count == 0, F.lit("no primary identity"))
        .when(count > 1, F.format_string("%d primary identities; a fragment needs exactly one", count))
    )


def keyed_fragments(
    df: DataFrame, source: ProfileSource, plan: ExportPlan
) -> DataFrame:
    """One dataset's fragments with key, rank and the leaves and memberships the plan needs."""
    ingest = F.col("_ingestTime")
    rank = ingest if plan.merge == "timestampOrdered" else F.struct(
        F.lit(-source.precedence).alias("precedence"), ingest.alias("ingestTime")
    )
    columns = [F.lit(source.dataset_id).alias(DATASET), *key_columns(), rank.alias(RANK), ingest.alias("_ingestTime")]
    for leaf in plan.leaves:
        columns.append(_leaf(df, leaf).alias(leaf.column))
    has_memberships = "segmentMembership" in df.columns
    for namespace, segment_id in plan.segment_refs:
        value = (
            F.col("segmentMembership").getItem(namespace).getItem(segment_id) if has_memberships
            else F.lit(None)
        )
        columns.append(value.cast(MEMBERSHIP).alias(segment_column(namespace, segment_id)))
    if not plan.segments:
        value = F.col("segmentMembership") if has_memberships else F.lit(None)
        columns.append(value.cast(MEMBERSHIP_MAP).alias("segmentMembership"))
    return with_identities(df).select(*columns)


def _leaf(df: DataFrame, leaf: Leaf) -> Column:
    want = spark_type(leaf.type)
    found = _lookup(df, leaf.path)
    if found is None:
        return F.lit(None).cast(want)
    col, have = found
    return conform(col, have, want)


def load_fragments(spark: SparkSession, plan: ExportPlan) -> DataFrame:
    """All sources' keyed fragments, bad ones included (REJECT says why)."""
    frames = [
        keyed_fragments(spark.read.format("delta").load(s.path), s, plan) for s in plan.sources
    ]
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return union


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
    aggregates += [_latest(leaf.column) for leaf in plan.leaves]
    aggregates += [_latest(segment_column(ns, sid)) for ns, sid in plan.segment_refs]
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
        # here, so that the sort aggregation (jobs.session) sorts once, after the shuffle,
        # and both of its phases stream over that order.
        good = good.repartition(KEY_NS, KEY_ID).sortWithinPartitions(KEY_NS, KEY_ID)
    merged = good.groupBy(KEY_NS, KEY_ID).agg(*aggregates)
    merged = merged.withColumn(HAS_PROFILE, F.lit(True)).withColumn("identityMap", identity_map(F.col(IDS), F.col(KEY_NS), F.col(KEY_ID)))
    if plan.segments:
        return merged.withColumn("segmentMembership", requested_memberships(plan.segment_refs))
    return merged.withColumn("segmentMembership", latest_memberships(F.col(MEMBERSHIPS)))


def identity_map(ids: Column, key_ns: Column, key_id: Column) -> Column:
    """The union of the fragments' identities; the profile key is the one primary."""
    namespaces = F.array_distinct(ids["ns"])
    return F.map_from_entries(F.transform(namespaces, lambda ns: F.struct(
        ns.alias("key"),
        F.transform(
            F.filter(ids, lambda e: e["ns"] == ns),
            lambda e: F.struct(
                e["id"].alias("id"),
                ((e["ns"] == key_ns) & (e["id"] == key_id)).alias("primary"),
            ),
        ).alias("value"),
    )))


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
    """{ns: {segment: membership}} keeping only memberships that exist; null if none does."""
    by_namespace: dict[str, list[tuple[str, Column]]] = {}
    for namespace, segment_id in refs:
        by_namespace.setdefault(namespace, []).append(
            (segment_id, F.col(segment_column(namespace, segment_id)))
        )
    none = F.create_map().cast(MEMBERSHIP_MAP)
    per_namespace = []
    for namespace, members in by_namespace.items():
        inner = _present(members)
        per_namespace.append(F.when(F.size(inner) > 0, F.create_map(F.lit(namespace), inner)).otherwise(none))
    result = F.map_concat(*per_namespace)
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
