"""Privacy requests on the lake (docs/reference/privacy.md#privacy-requests): a person's identities and
rows, their erasure with Delta DELETE, and the suppression filter every export applies."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.engine.inputs import union_all
from jobs.spec import LakeError, UserId

USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
HISTORY_LOOKBACK = 100  # commits in which a retry looks for its own DELETE


def holds_any(identities: Sequence[UserId], identity_map: Column | None = None) -> Column:
    """The record's identityMap holds one of the identities (namespaces matched without regard to case)."""
    by_namespace: dict[str, set[str]] = {}
    for identity in identities:
        by_namespace.setdefault(identity.namespace.lower(), set()).add(identity.value)
    entries = F.map_entries(identity_map if identity_map is not None else F.col("identityMap"))
    condition = F.lit(False)
    for namespace, values in sorted(by_namespace.items()):
        condition = condition | F.exists(entries, _entry_holds(namespace, sorted(values)))
    return F.coalesce(condition, F.lit(False))


def _entry_holds(namespace: str, ids: list[str]) -> Callable[[Column], Column]:
    """An identityMap entry of the namespace that lists one of the ids."""
    def holds(entry: Column) -> Column:
        return (F.lower(entry["key"]) == F.lit(namespace)) & F.exists(entry["value"], lambda i: i["id"].isin(ids))
    return holds


def not_suppressed(salt: str, hashes: Sequence[str]) -> Column:
    """No identity of the record's identityMap is on the suppression list (privacy_jobs.identity_hash)."""
    def hashed(namespace: Column, value: Column) -> Column:
        return F.sha2(F.concat_ws("\x1f", F.lit(salt), F.lower(namespace), value), 256)

    listed = F.exists(F.map_entries(F.col("identityMap")),
                      lambda e: F.exists(e["value"], lambda i: hashed(e["key"], i["id"]).isin(list(hashes))))
    return ~F.coalesce(listed, F.lit(False))


def _identity_maps(spark: SparkSession, paths: Sequence[str]) -> DataFrame:
    return union_all([spark.read.format("delta").load(path).select("identityMap") for path in paths])


def expanded_identities(spark: SparkSession, paths: Sequence[str], identities: Sequence[UserId],
                        max_identities: int, max_rounds: int) -> list[UserId]:
    """Every identity linked to the given ones through records that hold two of them: the person's
    identity component, as identityGraph pdg sees it. Namespaces as the lake writes them."""
    records = _identity_maps(spark, paths)
    known = {(i.namespace.lower(), i.value): i for i in identities}
    for _ in range(max_rounds):
        found = (records.where(holds_any(list(known.values())))
                 .select(F.explode(F.map_entries("identityMap")).alias("e"))
                 .select(F.col("e.key").alias("ns"), F.explode("e.value.id").alias("id"))
                 .distinct().collect())
        new = {(r["ns"].lower(), r["id"]): UserId(namespace=r["ns"], value=r["id"]) for r in found
               if r["id"] is not None and (r["ns"].lower(), r["id"]) not in known}
        if not new:
            return list(known.values())
        known.update(new)
        if len(known) > max_identities:
            raise LakeError(f"the person's identity component has more than {max_identities} identities "
                            "(maxIdentitiesPerGraph): erase with expandIds false, naming the identities")
    raise LakeError(f"the identity component did not close in {max_rounds} rounds (maxGraphIterations)")


def with_profile_keys(spark: SparkSession, paths: Sequence[str], identities: Sequence[UserId]) -> list[UserId]:
    """The identities and the profile keys (primary identities) of the profile fragments that hold one:
    erasing the person erases every fragment of their profile, also those without the identity given."""
    found = (_identity_maps(spark, paths).where(holds_any(identities))
             .select(F.explode(F.map_entries("identityMap")).alias("e"))
             .select(F.col("e.key").alias("ns"), F.explode("e.value").alias("i"))
             .where(F.col("i.primary")).select("ns", F.col("i.id").alias("id")).distinct().collect())
    known = {(i.namespace.lower(), i.value): i for i in identities}
    for row in found:
        known.setdefault((row["ns"].lower(), row["id"]), UserId(namespace=row["ns"], value=row["id"]))
    return list(known.values())


def person_rows(spark: SparkSession, path: str, identities: Sequence[UserId]) -> list[dict[str, Any]]:
    """The person's rows of one table, as JSON objects (a person has few: they come to the driver)."""
    rows = spark.read.format("delta").load(path).where(holds_any(identities)).select(F.to_json(F.struct("*"))).collect()
    return [json.loads(row[0]) for row in rows]


def _own_delete(table: DeltaTable, marker: str) -> tuple[int, int] | None:
    found = (table.history(HISTORY_LOOKBACK).where(F.col("userMetadata") == marker)
             .select("version", "operationMetrics").first())
    if found is None:
        return None
    return int((found["operationMetrics"] or {}).get("numDeletedRows", 0)), int(found["version"])


def erase(spark: SparkSession, path: str, identities: Sequence[UserId], job_id: str) -> tuple[int, int | None]:
    """Delete the person's rows from one Delta table, once: (rows deleted, the version written). A retry
    finds the commit of an earlier run of the job by its metadata and reports it instead."""
    table = DeltaTable.forPath(spark, path)
    marker = json.dumps({"privacyJobId": job_id})
    done = _own_delete(table, marker)
    if done is not None:
        return done
    spark.conf.set(USER_METADATA, marker)
    try:
        table.delete(holds_any(identities))
    finally:
        spark.conf.unset(USER_METADATA)
    done = _own_delete(table, marker)
    if done is not None:
        return done
    return 0, None  # nothing matched: Delta wrote no version
