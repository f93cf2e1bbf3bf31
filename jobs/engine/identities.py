"""A record's identities: its profile key, why it is rejected, and the merged identityMap.

Lambda functions (`transform`, `filter`) run outside Spark's generated code, so
a record's identities are listed once, in a projection of their own
(`with_identities`), and everything else reads that list with plain array
functions (docs/design.md#generated-code-where-it-counts). Under identityGraph none
an event's key and rejection reason come from the identityMap itself, so an
event is listed only if something reads its list.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.engine.columns import FLAGGED, IDENTITIES, IDENTITY, IDS, KEY_ID, KEY_NS, REJECT

UNROLLED_NAMESPACES = 4  # identityMaps with at most this many namespaces are keyed without lambdas


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


def key_columns(stitched: bool = False, listed: bool = True) -> list[Column]:
    """REJECT, KEY_NS, KEY_ID and IDS, with plain array functions (generated code).

    Under identityGraph none the key is the one primary identity: read from IDENTITIES when
    the record's identities are `listed` anyway (a fragment, whose IDS the merge reads), else
    from the identityMap itself, so that an event is keyed without IDENTITIES' lambdas
    (its IDS then lists them only if something reads it). Under pdg (`stitched`) it is
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
    if not listed:
        return [*primary_key_columns(), ids.alias(IDS)]
    count, key_ns, key_id = _first_primary(F.col(IDENTITIES))
    return [rejection_reason(count).alias(REJECT), key_ns.alias(KEY_NS), key_id.alias(KEY_ID), ids.alias(IDS)]


def primary_key_columns() -> list[Column]:
    """REJECT, KEY_NS and KEY_ID under identityGraph none, read from the identityMap without listing its
    identities (no lambdas): the same values key_columns gives."""
    count, key_ns, key_id = _primary_identity(F.col("identityMap"))
    return [rejection_reason(count).alias(REJECT), key_ns.alias(KEY_NS), key_id.alias(KEY_ID)]


def _primary_identity(identity_map: Column) -> tuple[Column, Column, Column]:
    """How many primary identities an identityMap has, and the namespace and id of the first.

    Events need only these, and listing their identities with lambdas took most of the time
    of keying them (docs/performance.md#generated-code-where-it-counts), so a map of up to
    UNROLLED_NAMESPACES namespaces is read one entry at a time with plain array functions;
    only a wider one is listed. A namespace with a null list counts as no primary identity
    at all, as in `identities`, whose list is then null.
    """
    size = F.size(identity_map)
    keys, values = F.map_keys(identity_map), F.map_values(identity_map)
    count: Column = F.lit(0)
    namespaces, ids = [], []
    for j in range(UNROLLED_NAMESPACES):
        entry = F.get(values, j)
        flags = entry["primary"]
        count = count + F.when(F.lit(j) >= size, 0).when(entry.isNotNull(), _trues(flags))
        position = F.array_position(flags, True)
        found = F.coalesce(position > 0, F.lit(False))
        namespaces.append((found, F.get(keys, j)))
        ids.append((found, F.get(entry, position.cast("int") - 1)["id"]))
    wide_count, wide_ns, wide_id = _first_primary(identities(identity_map))
    narrow = size <= UNROLLED_NAMESPACES
    return (F.when(narrow, count).otherwise(wide_count), F.when(narrow, _first(namespaces)).otherwise(wide_ns),
            F.when(narrow, _first(ids)).otherwise(wide_id))


def _first_primary(listed: Column) -> tuple[Column, Column, Column]:
    """How many primary identities a list of identities (as `identities` gives) has, and the
    namespace and id of the first."""
    flags = listed["primary"]
    first = F.get(listed, F.array_position(flags, True).cast("int") - 1)
    return _trues(flags), first["ns"], first["id"]


def _trues(flags: Column) -> Column:
    return F.size(flags) - F.size(F.array_remove(flags, True))


def _first(cases: list[tuple[Column, Column]]) -> Column:
    """The value of the first case whose condition holds (null if none does)."""
    (condition, value), *rest = cases
    column = F.when(condition, value)
    for condition, value in rest:
        column = column.when(condition, value)
    return column


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
