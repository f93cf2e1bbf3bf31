"""A record's identities: its profile key, why it is rejected, and the merged identityMap.

Lambda functions (`transform`, `filter`) run outside Spark's generated code, so
a record's identities are listed once, in a projection of their own
(`with_identities`), and everything else reads that list with plain array
functions (README, "Generated code where it counts").
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.engine.columns import FLAGGED, IDENTITIES, IDENTITY, IDS, KEY_ID, KEY_NS, REJECT


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


def profile_key(identity_map: Column, stitched: bool) -> Column:
    """An exported row's profile key: its primary identity, or under pdg its smallest identity."""
    if not stitched:
        return primary_key(identity_map)
    return F.array_min(F.transform(identities(identity_map), lambda i: F.struct(i["ns"], i["id"])))


def with_identities(df: DataFrame) -> DataFrame:
    """df plus IDENTITIES, in a projection of its own.

    The key, the rejection reason, the identities and every filter the optimizer
    pushes down read it; in one select Spark would run the lambdas once for each.
    """
    return df.select("*", identities(F.col("identityMap")).alias(IDENTITIES))


def key_columns(stitched: bool = False) -> list[Column]:
    """REJECT, KEY_NS, KEY_ID and IDS from IDENTITIES, with plain array functions (generated code).

    Under identityGraph none the key is the one primary identity. Under pdg (`stitched`) it is
    the record's smallest identity, until stitching replaces it by its component's, and the
    record keeps its flagged identities (FLAGGED) for the merged identityMap.
    """
    ids = identity_list()
    if stitched:
        smallest = F.array_min(ids)
        none = F.coalesce(F.size(F.col(IDENTITIES)), F.lit(0)) <= 0
        reason = F.when(none, F.lit("no identity; under identityGraph pdg a record needs at least one"))
        return [reason.alias(REJECT), smallest["ns"].alias(KEY_NS), smallest["id"].alias(KEY_ID), ids.alias(IDS),
                F.col(IDENTITIES).alias(FLAGGED)]
    flags = F.col(IDENTITIES)["primary"]
    primaries = F.size(flags) - F.size(F.array_remove(flags, True))
    key = F.get(F.col(IDENTITIES), F.array_position(flags, True).cast("int") - 1)
    return [rejection_reason(primaries).alias(REJECT), key["ns"].alias(KEY_NS), key["id"].alias(KEY_ID),
            ids.alias(IDS)]


def identity_list() -> Column:
    """IDENTITIES without their flags: array<struct<ns, id>>."""
    return F.arrays_zip(F.col(IDENTITIES)["ns"], F.col(IDENTITIES)["id"]).cast(f"array<{IDENTITY}>")


def rejection_reason(primaries: Column) -> Column:
    """Why a record with this many primary identities is rejected; null if it is not."""
    count = F.coalesce(primaries, F.lit(0))
    return (
        F.when(count == 0, F.lit("no primary identity"))
        .when(count > 1, F.format_string("%d primary identities; a fragment needs exactly one", count))
    )


def identity_map(ids: Column, primary: Callable[[Column], Column]) -> Column:
    """The identities `ids` as an identityMap; `primary(identity)` says which are primary."""
    namespaces = F.array_distinct(ids["ns"])
    return F.map_from_entries(F.transform(namespaces, lambda ns: F.struct(
        ns.alias("key"),
        F.transform(
            F.filter(ids, lambda e: e["ns"] == ns),
            lambda e: F.struct(e["id"].alias("id"), primary(e).alias("primary")),
        ).alias("value"),
    )))


def key_is_primary(key_ns: Column, key_id: Column) -> Callable[[Column], Column]:
    """identityGraph none: the profile key is its one primary identity."""
    return lambda e: (e["ns"] == key_ns) & (e["id"] == key_id)


def flagged_primary(flagged: Column) -> Callable[[Column], Column]:
    """identityGraph pdg: an identity is primary if some fragment ingested it as primary."""
    return lambda e: F.array_contains(flagged, F.struct(e["ns"].alias("ns"), e["id"].alias("id"),
                                                        F.lit(True).alias("primary")))
