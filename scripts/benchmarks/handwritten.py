"""A hand-written one-pass PySpark job: the export a data engineer would write for this one lake.

It reads the same fragment tables, keys each fragment by its one primary identity, merges them in
one groupBy (the latest non-null value of each exported leaf and requested membership by
_ingestTime), keeps the profiles in a segment with a realized or existing status, builds the same
columns and appends them to a Delta table. It knows the lake's schema and the job in advance, so
it has none of our planning, validation, rejection counts or record keeping: what ours must not be
slower than. DuckDB's statement (benchmarks.duck) is the same export in SQL.
"""

from __future__ import annotations

import time
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.lake import Lake, table_stats
from benchmarks.rounds import Sample
from benchmarks.settings import BASELINE_LEAVES, STATUSES
from sample_lake import segment_id

NAMESPACE = "ups"


def _identity_pairs(primary_only: bool) -> Column:
    """A fragment's identities as (ns, id) structs; only its primary ones if asked."""
    def listed(entry: Column) -> Column:
        ids = F.filter(entry["value"], lambda i: F.coalesce(i["primary"], F.lit(False))) if primary_only \
            else entry["value"]
        return F.transform(ids, lambda i: F.struct(entry["key"].alias("ns"), i["id"].alias("id")))
    return F.flatten(F.transform(F.map_entries("identityMap"), listed))


def _keyed(fragments: DataFrame, members: dict[str, Column]) -> DataFrame:
    """Fragments with exactly one primary identity, by key, with the columns the merge takes."""
    picked = {name: F.col(path) for name, path in BASELINE_LEAVES.items()} | members
    return (fragments
            .select(_identity_pairs(primary_only=True).alias("_primaries"), "_ingestTime",
                    _identity_pairs(primary_only=False).alias("_ids"),
                    *[value.alias(name) for name, value in picked.items()])
            .where(F.size("_primaries") == 1)
            .select(F.col("_primaries")[0]["ns"].alias("_keyNs"), F.col("_primaries")[0]["id"].alias("_keyId"),
                    "_ingestTime", "_ids", *picked))


def _merged(keyed: DataFrame, columns: list[str]) -> DataFrame:
    """One row per key: every identity, and the latest non-null value of each column."""
    def latest(name: str) -> Column:
        return F.max_by(name, F.when(F.col(name).isNotNull(), F.col("_ingestTime"))).alias(name)
    return keyed.groupBy("_keyNs", "_keyId").agg(
        F.array_distinct(F.flatten(F.collect_list("_ids"))).alias("_ids"), *[latest(c) for c in columns])


def _identity_map() -> Column:
    """The profile's identities by namespace; only its key is primary."""
    ids = F.col("_ids")
    return F.map_from_entries(F.transform(F.array_distinct(F.transform(ids, lambda i: i["ns"])), lambda ns: F.struct(
        ns, F.transform(F.filter(ids, lambda i: i["ns"] == ns), lambda i: F.struct(
            i["id"].alias("id"), ((i["ns"] == F.col("_keyNs")) & (i["id"] == F.col("_keyId"))).alias("primary"))))))


def _membership_map(members: list[str], segments: list[str]) -> Column:
    """{namespace: {segment: membership}} of the requested segments the profile has."""
    entries = F.filter(F.array(*[F.struct(F.lit(s).alias("key"), F.col(m).alias("value"))
                                 for m, s in zip(members, segments, strict=True)]),
                       lambda e: e["value"].isNotNull())
    return F.when(F.size(entries) > 0, F.create_map(F.lit(NAMESPACE), F.map_from_entries(entries)))


def handwritten_export(spark: SparkSession, lake: Lake, segments: int) -> DataFrame:
    """The rows of the combined export of the lake's first `segments` segments."""
    segment_ids = [segment_id(i) for i in range(segments)]
    members = {f"_m{i}": F.col("segmentMembership")[NAMESPACE][s] for i, s in enumerate(segment_ids)}
    frames = [spark.read.format("delta").load(path) for path in lake.profile_paths]
    fragments = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
    merged = _merged(_keyed(fragments, members), [*BASELINE_LEAVES, *members])
    in_segment = reduce(lambda a, b: a | b, [F.coalesce(F.col(m)["status"].isin(*STATUSES), F.lit(False))
                                             for m in members])

    def nested(name: str, *path: str) -> Column:
        value = F.col(name)
        for field in reversed(path):
            value = F.struct(value.alias(field))
        return F.when(F.col(name).isNotNull(), value)

    return merged.where(in_segment).select(
        F.lit("handwritten").alias("_batchId"),
        _identity_map().alias("identityMap"),
        _membership_map(list(members), segment_ids).alias("segmentMembership"),
        F.transform("_identities", lambda i: F.when(i["id"].isNotNull(), F.struct(i["id"].alias("id"))))
        .alias("identities"),
        nested("_email", "address").alias("personalEmail"),
        nested("_firstName", "name", "firstName").alias("person"),
        nested("_tier", "tier").alias("loyalty"),
    )


def run_handwritten(spark: SparkSession, lake: Lake, segments: int, name: str) -> Sample:
    destination = str(lake.root / "runs" / name)
    started = time.perf_counter()
    handwritten_export(spark, lake, segments).write.format("delta").mode("append").save(destination)
    seconds = time.perf_counter() - started
    return Sample(seconds, table_stats(destination)[0], destination)
