"""Mirror destinations (docs/reference/mirrors.md): the job's current audience, kept by one Delta MERGE.

A mirror holds one row per profile key, or per segment and key for per-segment jobs, with the
columns an append export writes and the id of the job that last wrote the row. Each job's MERGE
inserts the profiles that now qualify, updates those whose exported values changed (an unchanged
row is not rewritten), and deletes those that left:

- a full job's source is its whole audience, so every row it does not hold is deleted;
- an incremental job's source is every profile changed since its watermark, those that left
  the audience without a batch (`_batchId` null), and it touches those keys only.

The table has Delta's change data feed on, so that a consumer reads the inserts, updates and
deletes since its last version with any Delta reader. The MERGE carries the job's transaction id,
so a retry after the commit writes nothing, and the commit's own metrics are the record's counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import deltalake
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DataType, MapType, StructField, StructType

from jobs.engine.audience import Audience, derived, keep, kept
from jobs.engine.columns import BATCH, KEY_ID, KEY_NS
from jobs.engine.merge import without_nulls
from jobs.engine.metrics import ConsentCounters, ExportedCounts, counted_rows
from jobs.engine.segments import any_segment, changed_profiles, consented, matched, select_members
from jobs.engine.sink import TXN_VERSION, check_destination, own_commit, retried, session_conf
from jobs.planner import ExportPlan, SegmentSpec
from jobs.spec import JobFailure, read_delta_schema

PROFILE_NAMESPACE, PROFILE_ID = "_profileKeyNamespace", "_profileKeyId"  # the profile key
SEGMENT_NAMESPACE, SEGMENT_ID = "_segmentNamespace", "_segmentId"  # per-segment mirrors; else null
JOB = "_jobId"  # the job that last inserted or updated the row
# A 64-bit hash of the row's exported values: the MERGE finds a changed row by it, and so reads the mirror's
# keys and hashes only, not every exported value of every file it touches.
VALUES_HASH = "_valuesHash"
# The row's identity namespaces, sorted: the audience's counts read this small column, not every identityMap.
NAMESPACES = "_identityNamespaces"
KEY_COLUMNS = (PROFILE_NAMESPACE, PROFILE_ID, SEGMENT_NAMESPACE, SEGMENT_ID)
BOOKKEEPING = (*KEY_COLUMNS, BATCH, JOB, VALUES_HASH, NAMESPACES)  # a row's other columns are its exported values
CHANGE_DATA_FEED = "delta.enableChangeDataFeed"
DELETION_VECTORS = "delta.enableDeletionVectors"
_ENTRY = "_mirrorEntry"
# The MERGE and the audience's count read narrow columns (keys, hashes, namespaces) of the whole mirror:
# whole-stage codegen, off for the exports' wide projections (engine/session.py), makes them about 3x faster.
NARROW_PLANS = {"spark.sql.codegen.wholeStage": "true"}
log = logging.getLogger(__name__)


class NotAMirror(JobFailure):
    """The destination declared as a mirror holds a table that is not one."""

    code = "DESTINATION_NOT_A_MIRROR"


@dataclass(frozen=True)
class MirrorCommit:
    """What a job's MERGE did to the mirror, from the commit's own metrics."""

    inserted: int
    updated: int
    deleted: int
    version: int | None  # None: no version written


def mirror_rows(profiles: DataFrame, plan: ExportPlan, output: list[Column],
                consent: ConsentCounters | None = None) -> DataFrame:
    """The MERGE's source: key, segment, `_batchId`, `_jobId` and the `output` columns of each row.

    A full job's rows are its audience. An incremental job's are every changed profile (per segment:
    every listed segment of it); those that do not qualify, or that consent leaves out, have no batch.
    `consent`: counts the qualifying profiles that consent leaves out, on the way.
    """
    if plan.incremental:
        profiles = changed_profiles(profiles, plan)
        if consent is not None:
            profiles = consent.observe(profiles, within=any_segment(plan))
        allowed = consented(plan) if plan.consent else F.lit(True)
        if plan.per_segment:
            listed = F.array(*[_entry(s.batch_id, s, matched(plan, s) & allowed) for s in plan.segments])
        else:
            listed = F.array(_entry(plan.batch_ids[0], None, any_segment(plan) & allowed))
    else:
        profiles = select_members(profiles, plan, consent.observe if consent is not None else None)
        if plan.per_segment:
            listed = without_nulls(F.array(*[F.when(matched(plan, s), _entry(s.batch_id, s, F.lit(True)))
                                             for s in plan.segments]), ENTRY_TYPE)
        else:
            listed = F.array(_entry(plan.batch_ids[0], None, F.lit(True)))
    # The output columns are computed once per profile, before per-segment rows repeat them.
    keyed = profiles.select(F.col(KEY_NS).alias(PROFILE_NAMESPACE), F.col(KEY_ID).alias(PROFILE_ID),
                            listed.alias(_ENTRY), *output)
    values = [c for c in keyed.columns if c not in (PROFILE_NAMESPACE, PROFILE_ID, _ENTRY)]
    # explode_outer, not explode: see segments.tag_batches.
    exploded = keyed.select(PROFILE_NAMESPACE, PROFILE_ID, F.explode_outer(_ENTRY).alias(_ENTRY), *values)
    entry = F.col(_ENTRY)
    return exploded.select(
        PROFILE_NAMESPACE, PROFILE_ID, entry["ns"].alias(SEGMENT_NAMESPACE), entry["id"].alias(SEGMENT_ID),
        F.when(entry["keep"], entry["batch"]).alias(BATCH), F.lit(plan.job_id).cast("long").alias(JOB),
        values_hash(values).alias(VALUES_HASH), F.array_sort(F.map_keys("identityMap")).alias(NAMESPACES), *values,
    )


def values_hash(values: list[str]) -> Column:
    """The hash of a row's exported values: xxhash64 of their JSON (Spark hashes no maps, and JSON tells
    a missing value from an empty one)."""
    return F.xxhash64(F.to_json(F.struct(*[F.col(f"`{c}`") for c in values])))


ENTRY_TYPE = "struct<batch: string, ns: string, id: string, keep: boolean>"


def _entry(batch_id: str, segment: SegmentSpec | None, keep: Column) -> Column:
    return F.struct(F.lit(batch_id).alias("batch"),
                    F.lit(segment.namespace if segment else None).cast("string").alias("ns"),
                    F.lit(segment.segment_id if segment else None).cast("string").alias("id"),
                    keep.alias("keep"))


def predates_bookkeeping(plan: ExportPlan) -> bool:
    """Whether the job's mirror exists but was written before its rows carried their values' hash and
    namespaces: its next job must then read every profile, so that every row gets them."""
    schema = read_delta_schema(plan.destination_path) if plan.mirror else None
    if schema is None:
        return False
    columns = {f["name"] for f in schema["fields"]}
    return PROFILE_NAMESPACE in columns and not {VALUES_HASH, NAMESPACES} <= columns


def write_mirror(spark: SparkSession, rows: DataFrame, plan: ExportPlan) -> MirrorCommit:
    """Computes `rows` once (their observations count on the way), then MERGEs them into the mirror in
    one commit, unless another run of the job committed first; what the job's commit did."""
    check_destination(rows, plan)
    ensure_mirror(spark, rows, plan.destination_path, plan.job_id, plan.deletion_vectors)
    # Delta's MERGE reads its source twice (which files it touches, then the rows it writes). Checkpointed
    # here, the merge and its observations run once, and Delta need not copy the source again. (A
    # persisted source instead fails the MERGE: Delta refuses a source that gets cached while it runs.)
    kept = rows.localCheckpoint(eager=True)

    def merge() -> None:
        with session_conf(spark, {
            "spark.databricks.delta.write.txnAppId": plan.txn_app_id,
            "spark.databricks.delta.write.txnVersion": str(TXN_VERSION),
            "spark.databricks.delta.commitInfo.userMetadata": plan.user_metadata,
            "spark.databricks.delta.merge.materializeSource": "none",
            **NARROW_PLANS,
        }):
            _merge(spark, kept, plan)

    try:
        retried(merge, plan.destination_path, plan.job_id)
    finally:
        # Spark frees a checkpoint's blocks only once the JVM collects its plan, which in a long-lived
        # session (serve, run-pending) can be many minutes later: at 1M profiles a full job's is 680 MB.
        kept._jdf.queryExecution().logical().rdd().unpersist(False)
    return mirror_commit(plan)


def ensure_mirror(spark: SparkSession, rows: DataFrame, path: str, job_id: int, deletion_vectors: bool = False) -> None:
    """Creates the mirror table (empty, with the change data feed on, and deletion vectors if asked)
    unless it exists; turns deletion vectors on for an existing one once the config asks for them; fails
    if the table there is not a mirror (an append destination's, say)."""
    properties = {CHANGE_DATA_FEED: "true", **({DELETION_VECTORS: "true"} if deletion_vectors else {})}
    if deltalake.DeltaTable.is_deltatable(path):
        table = deltalake.DeltaTable(path)
        columns = {f.name for f in table.schema().fields}
        missing = [c for c in KEY_COLUMNS if c not in columns]
        if missing:
            raise NotAMirror(
                f"the destination at {path} is declared mode = \"mirror\" but its table is not a mirror (it has no "
                f"{', '.join(missing)} column): nothing was written. Point the mirror at a new path, or declare "
                "the dataset mode = \"append\".")
        if deletion_vectors and table.metadata().configuration.get(DELETION_VECTORS) != "true":
            escaped = path.replace("`", "``")
            spark.sql(f"ALTER TABLE delta.`{escaped}` SET TBLPROPERTIES ('{DELETION_VECTORS}' = 'true')")
        return

    def create() -> None:
        # The writer's "ignore" mode rather than CREATE TABLE IF NOT EXISTS: a job killed while creating
        # the table can leave a _delta_log folder with no commit in it, which CREATE TABLE takes for a
        # table and then fails to find (DELTA_TABLE_NOT_FOUND), for this job and every later one. The
        # writer creates the table over it, and does nothing where a table exists (a concurrent creator's).
        writer = spark.createDataFrame([], nullable(rows.schema)).write.format("delta").mode("ignore")
        for key, value in properties.items():
            writer = writer.option(key, value)
        writer.save(path)

    retried(create, path, job_id)


def nullable(schema: StructType) -> StructType:
    """The schema with every field, element and value nullable, as Delta stores a DataFrame's (and as it
    must: it refuses NOT NULL inside arrays and maps)."""
    def relaxed(t: DataType) -> DataType:
        if isinstance(t, StructType):
            return StructType([StructField(f.name, relaxed(f.dataType), True, f.metadata) for f in t.fields])
        if isinstance(t, ArrayType):
            return ArrayType(relaxed(t.elementType), True)
        if isinstance(t, MapType):
            return MapType(t.keyType, relaxed(t.valueType), True)
        return t
    return StructType([StructField(f.name, relaxed(f.dataType), True, f.metadata) for f in schema.fields])


def _merge(spark: SparkSession, rows: DataFrame, plan: ExportPlan) -> None:
    target = DeltaTable.forPath(spark, plan.destination_path)
    existing = set(target.toDF().columns)
    if all(c in existing for c in rows.columns):
        # A row whose values are the same is not rewritten. Only the keys and hashes of the mirror are read.
        changed = ~F.col(f"t.{VALUES_HASH}").eqNullSafe(F.col(f"s.{VALUES_HASH}"))
    else:
        # The job adds columns (or the mirror predates its hashes): every row it matches gets them.
        changed = F.lit(True)
    same_key = (F.col(f"t.{PROFILE_NAMESPACE}") == F.col(f"s.{PROFILE_NAMESPACE}")) & (
        F.col(f"t.{PROFILE_ID}") == F.col(f"s.{PROFILE_ID}"))
    for column in (SEGMENT_NAMESPACE, SEGMENT_ID):
        same_key &= F.col(f"t.{column}").eqNullSafe(F.col(f"s.{column}"))
    merge = target.alias("t").merge(rows.alias("s"), same_key)
    if plan.incremental:
        kept = F.col(f"s.{BATCH}").isNotNull()
        merge = (merge.whenMatchedDelete(~kept).whenMatchedUpdateAll(changed)
                 .whenNotMatchedInsertAll(kept))
    else:
        merge = merge.whenMatchedUpdateAll(changed).whenNotMatchedInsertAll().whenNotMatchedBySourceDelete()
    merge.withSchemaEvolution().execute()


def mirror_commit(plan: ExportPlan) -> MirrorCommit:
    """What the job's MERGE commit in the mirror (found by its userMetadata) did; nothing, at no version,
    if it wrote none (an incremental job that changed nothing)."""
    found = own_commit(plan.destination_path, plan.user_metadata)
    if found is None:
        return MirrorCommit(0, 0, 0, None)
    metrics = found.get("operationMetrics") or {}
    return MirrorCommit(int(metrics.get("numTargetRowsInserted", 0)), int(metrics.get("numTargetRowsUpdated", 0)),
                        int(metrics.get("numTargetRowsDeleted", 0)), int(found["version"]))


def mirror_counts(spark: SparkSession, plan: ExportPlan,
                  written: MirrorCommit | None = None) -> tuple[ExportedCounts, MirrorCommit]:
    """The record's counters of a mirror job, and what its MERGE did (`written`, or found in the log).

    A combined mirror's counts are kept beside it (engine/audience.py): the counts at the version this job
    left, if kept already; else those kept at the version before its commit plus its change feed; else
    counted from the mirror.
    """
    commit = written or mirror_commit(plan)
    if plan.per_segment:  # a profile in several segments counts once: not a sum of changes
        return audience_counts(spark, plan, commit.version), commit
    table = deltalake.DeltaTable(plan.destination_path)
    # str(): delta-rs's stubs type the id as an int; it is the table's UUID string.
    version, table_id = commit.version if commit.version is not None else table.version(), str(table.metadata().id)
    found = kept(plan.destination_path, version, table_id)
    if found is None:
        if commit.version is not None:
            found = derived(plan.destination_path, version, table, NAMESPACES,
                            commit.inserted + 2 * commit.updated + commit.deleted)
        if found is None:
            counts = audience_counts(spark, plan, version)
            found = Audience(counts.total, counts.by_namespace)
        keep(plan.destination_path, version, table_id, found)
    return ExportedCounts(found.total, found.by_namespace, {plan.batch_ids[0]: found.total}, None), commit


def audience_counts(spark: SparkSession, plan: ExportPlan, version: int | None) -> ExportedCounts:
    """The record's counters for a mirror: its audience after the job, read from the whole mirror at
    `version` (None: the current one), in one small aggregation (two for per-segment mirrors)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    mirror = reader.load(plan.destination_path)
    batch: Column = F.lit(plan.batch_ids[0])
    if plan.per_segment:
        batch = F.lit(None).cast("string")
        for s in plan.segments:
            batch = F.when((F.col(SEGMENT_NAMESPACE) == s.namespace) & (F.col(SEGMENT_ID) == s.segment_id),
                           F.lit(s.batch_id)).otherwise(batch)
    rows = mirror.select(batch.alias(BATCH), F.struct(PROFILE_NAMESPACE, PROFILE_ID).alias("key"),
                         F.col(NAMESPACES).alias("namespaces"))
    with session_conf(spark, NARROW_PLANS):
        return counted_rows(rows, plan)
