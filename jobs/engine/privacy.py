"""Privacy requests on the lake (docs/reference/privacy.md#privacy-requests): a batch of people's
identities and rows (one scan per dataset for all of them), their erasure with one Delta commit per
dataset, and the suppression filter every export applies."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from jobs.engine.inputs import union_all
from jobs.engine.sink import own_commit, session_conf
from jobs.spec import LakeError, UserId

USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


def holds_any(identities: Sequence[UserId]) -> Column:
    """The record's identityMap holds one of the identities (namespaces matched without regard to case)."""
    by_namespace: dict[str, set[str]] = {}
    for identity in identities:
        by_namespace.setdefault(identity.namespace.lower(), set()).add(identity.value)
    entries = F.map_entries(F.col("identityMap"))
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


def _everyone(people: Mapping[str, Sequence[UserId]]) -> list[UserId]:
    return [i for ids in people.values() for i in ids]


def _identity_maps(spark: SparkSession, paths: Sequence[str]) -> DataFrame:
    return union_all([spark.read.format("delta").load(path).select("identityMap") for path in paths])


def _identities(identity_map: Column) -> Column:
    """The record's identities: an array of (ns lowered, namespace as written, id, primary)."""
    return F.flatten(F.transform(F.map_entries(identity_map), lambda e: F.transform(
        e["value"], lambda i: F.struct(F.lower(e["key"]).alias("ns"), e["key"].alias("namespace"),
                                       i["id"].alias("id"), i["primary"].alias("primary")))))


def tagged(records: DataFrame, people: Mapping[str, Sequence[UserId]]) -> DataFrame:
    """`_person` and the records' columns: one row per record and person (a privacy job) whose identities
    the record holds. One scan for a whole batch of people: their identities are a broadcast table."""
    spark = records.sparkSession
    wanted = spark.createDataFrame([(person, i.namespace.lower(), i.value) for person, ids in people.items()
                                    for i in ids], "_person string, _ns string, _id string")
    held = (records.where(holds_any(_everyone(people)))
            .withColumn("_row", F.monotonically_increasing_id())
            .withColumn("_held", F.explode(_identities(F.col("identityMap")))))
    matched = held.join(F.broadcast(wanted), (F.col("_held.ns") == F.col("_ns")) & (F.col("_held.id") == F.col("_id")))
    return matched.dropDuplicates(["_row", "_person"]).drop("_held", "_ns", "_id", "_row")


def _grown(people: Mapping[str, Sequence[UserId]], found: Sequence[Row]) -> dict[str, list[UserId]]:
    """Each person's identities, with those found for them (rows of `_person`, `namespace`, `id`) added."""
    known = {person: {(i.namespace.lower(), i.value): i for i in ids} for person, ids in people.items()}
    for row in found:
        if row["id"] is not None:
            known[row["_person"]].setdefault((row["namespace"].lower(), row["id"]),
                                             UserId(namespace=row["namespace"], value=row["id"]))
    return {person: list(ids.values()) for person, ids in known.items()}


def _held_identities(records: DataFrame, people: Mapping[str, Sequence[UserId]]) -> DataFrame:
    return (tagged(records, people).select("_person", F.explode(_identities(F.col("identityMap"))).alias("i"))
            .select("_person", "i.namespace", "i.id", "i.primary"))


def with_profile_keys(spark: SparkSession, paths: Sequence[str],
                      people: Mapping[str, Sequence[UserId]]) -> dict[str, list[UserId]]:
    """Each person's identities and the profile keys (primary identities) of the profile fragments that
    hold one: erasing a person erases every fragment of their profile, also those without the identity given."""
    found = (_held_identities(_identity_maps(spark, paths), people).where(F.col("primary"))
             .select("_person", "namespace", "id").distinct().collect())
    return _grown(people, found)


def expanded_identities(spark: SparkSession, paths: Sequence[str], people: Mapping[str, Sequence[UserId]],
                        max_identities: int, max_rounds: int) -> dict[str, list[UserId] | LakeError]:
    """Each person's identity component, as identityGraph pdg sees it: every identity linked to theirs
    through records that hold two of them (namespaces as the lake writes them), or why it has none.
    A round is one scan for every person whose component still grows."""
    records = _identity_maps(spark, paths)
    growing = {person: list(ids) for person, ids in people.items()}
    closed: dict[str, list[UserId] | LakeError] = {}
    for _ in range(max_rounds):
        found = _held_identities(records, growing).select("_person", "namespace", "id").distinct().collect()
        still: dict[str, list[UserId]] = {}
        for person, ids in _grown(growing, found).items():
            if len(ids) == len(growing[person]):
                closed[person] = ids
            elif len(ids) > max_identities:
                closed[person] = LakeError(
                    f"the person's identity component has more than {max_identities} identities "
                    "(maxIdentitiesPerGraph): erase with expandIds false, naming the identities")
            else:
                still[person] = ids
        growing = still
        if not growing:
            return closed
    for person in growing:
        closed[person] = LakeError(f"the identity component did not close in {max_rounds} rounds (maxGraphIterations)")
    return closed


def rows_by_person(spark: SparkSession, path: str, people: Mapping[str, Sequence[UserId]]) -> dict[str, list[Any]]:
    """Each person's rows of one table, as JSON objects (people have few: they come to the driver)."""
    records = spark.read.format("delta").load(path)
    as_json = records.select("identityMap", F.to_json(F.struct(*[F.col(f"`{c}`") for c in records.columns]))
                             .alias("_json"))
    found: dict[str, list[Any]] = {person: [] for person in people}
    for row in tagged(as_json, people).select("_person", "_json").collect():
        found[row["_person"]].append(json.loads(row["_json"]))
    return found


def _own_delete(path: str, marker: str) -> tuple[int, int] | None:
    """(rows deleted, version) of the table's commit with this userMetadata, read with delta-rs: a
    look at the log, no Spark job."""
    found = own_commit(path, marker)
    if found is None:
        return None
    return int((found.get("operationMetrics") or {}).get("numTargetRowsDeleted", 0)), int(found["version"])


def delete_marker(batch_id: str, people: Iterable[str]) -> str:
    """The userMetadata of a batch's delete commits: the batch, and a digest of its people, so that a
    runner which took over part of a batch from a slow one deletes its part itself."""
    digest = hashlib.sha256("\n".join(sorted(people)).encode()).hexdigest()[:16]
    return json.dumps({"privacyBatchId": batch_id, "people": digest})


def erase(spark: SparkSession, path: str, people: Mapping[str, Sequence[UserId]],
          batch_id: str) -> tuple[dict[str, int], int | None]:
    """Delete a batch of people's rows from one Delta table in one commit, once: the rows deleted per
    person and the version written. A retry finds the commit of an earlier run of the batch by its
    metadata and reports it instead. With several people, each one's rows are counted in the version
    before the commit: the rows it removed.

    A MERGE, not a DELETE: a DELETE's commit records its condition, and with it the people's identities,
    in the table's log. The MERGE's source is the identityMaps that hold one of them (the same rows:
    every record with such a map holds the person), and its condition names only columns."""
    table = DeltaTable.forPath(spark, path)
    marker = delete_marker(batch_id, people)
    done = _own_delete(path, marker)
    if done is None:
        held = (spark.read.format("delta").load(path).where(holds_any(_everyone(people)))
                .select(F.map_entries("identityMap").alias("entries")).distinct())
        with session_conf(spark, {USER_METADATA: marker}):
            (table.alias("t").merge(held.alias("s"), "map_entries(t.identityMap) = s.entries")
             .whenMatchedDelete().execute())
        done = _own_delete(path, marker)
    counts = dict.fromkeys(people, 0)
    if done is None:
        return counts, None  # nothing matched: Delta wrote no version
    deleted, version = done
    if deleted == 0:
        return counts, version
    if len(people) == 1:
        return dict.fromkeys(people, deleted), version
    before = spark.read.format("delta").option("versionAsOf", version - 1).load(path).select("identityMap")
    counted = tagged(before, people).groupBy("_person").count().collect()
    counts.update({row["_person"]: int(row["count"]) for row in counted})
    return counts, version
