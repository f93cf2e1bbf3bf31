"""ExperienceEvents per profile key: the `events` column and the keys of empty profiles.

Each event dataset is keyed like profile fragments (its one primary identity;
others are rejected and counted), cut to the ingest window `(from, to]`,
projected to the requested fields, then grouped once per key into an array
ordered by `timestamp` (then `_id`, so the order is stable).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DataType, MapType, StructType

from jobs.engine.columns import DATASET, IDS, KEY_ID, KEY_NS, REJECT
from jobs.engine.conform import column_as
from jobs.engine.identities import identity_map, key_columns, with_identities
from jobs.engine.inputs import read_sources
from jobs.engine.projection import project
from jobs.plan import EventPlan, EventSource
from jobs.schema import fields_of

EVENT, EVENTS, EVENT_IDENTITIES = "_event", "_events", "_eventIdentityMap"


def keyed_events(df: DataFrame, source: EventSource, plan: EventPlan) -> DataFrame:
    """One dataset's events in the window, with key, identities and the projected event struct."""
    if plan.from_ingest is not None:
        df = df.where(F.col("_ingestTime") > F.lit(plan.from_ingest))
    if plan.to_ingest is not None:
        df = df.where(F.col("_ingestTime") <= F.lit(plan.to_ingest))
    columns = [F.lit(source.dataset_id).alias(DATASET), *key_columns(), F.col("_ingestTime")]
    if plan.projection is not None:
        merged = fields_of(plan.schema)
        order = F.struct(F.col("timestamp").alias("t"), F.col("_id").cast("string").alias("id"))
        event = F.struct(*[project(n, column_as(df, (n.name,), merged[n.name])).alias(n.name)
                           for n in plan.projection])
        columns.append(F.struct(order.alias("order"), event.alias("value")).alias(EVENT))
    return with_identities(df).select(*columns)


def load_events(spark: SparkSession, plan: EventPlan) -> DataFrame:
    """All event datasets' keyed events, bad ones included (REJECT says why)."""
    return read_sources(spark, plan.sources, lambda s: s.path, lambda df, s: keyed_events(df, s, plan))


def _earlier(a: Column, b: Column) -> Column:
    a, b = a["order"], b["order"]
    return (
        F.when(a["t"] < b["t"], -1).when(a["t"] > b["t"], 1)
        .when(a["id"] < b["id"], -1).when(a["id"] > b["id"], 1).otherwise(0)
    )


def _orderable(t: DataType) -> bool:
    if isinstance(t, MapType):
        return False
    if isinstance(t, StructType):
        return all(_orderable(f.dataType) for f in t.fields)
    return _orderable(t.elementType) if isinstance(t, ArrayType) else True


def events_by_key(events: DataFrame, plan: EventPlan, identities: bool) -> DataFrame:
    """One row per key: its events in time order (if asked) and, if asked, its identities.

    Sorting by the struct's natural order (`sort_array`, generated code) gives the
    same order as the comparator; a comparator lambda is needed only when the
    event holds a map, which Spark cannot order.
    """
    aggregates = []
    if identities:
        aggregates.append(F.sort_array(F.array_distinct(F.flatten(F.collect_list(IDS)))).alias(IDS))
    if plan.projection is not None:
        collected = F.collect_list(EVENT)
        in_order = (F.sort_array(collected) if _orderable(events.schema[EVENT].dataType)
                    else F.array_sort(collected, _earlier))
        aggregates.append(in_order["value"].alias(EVENTS))
    grouped = events.where(F.col(REJECT).isNull()).groupBy(KEY_NS, KEY_ID).agg(*aggregates)
    if not identities:
        return grouped
    return grouped.withColumn(
        EVENT_IDENTITIES, identity_map(F.col(IDS), F.col(KEY_NS), F.col(KEY_ID))
    ).drop(IDS)
