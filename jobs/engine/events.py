"""ExperienceEvents per profile key: the `events` column, the keys of empty profiles, and the
counts of events that meet segment conditions (`xEvent[condition].count()`).

Each event dataset is keyed like profile fragments (its one primary identity;
others are rejected and counted), cut to the ingest window `(from, to)`,
projected to the requested fields, then grouped once per key into an array
ordered by `timestamp` (then `_id`, so the order is stable). A job that also
counts events reads them in the same single grouping: its counts take every
event, and the window then picks the events of the array instead of cutting the rows.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DataType, MapType, StructType

from jobs.engine.columns import DATASET, FLAGGED, IDS, KEY_ID, KEY_NS, MEMBERS, REJECT
from jobs.engine.conform import column_as
from jobs.engine.evaluation import Scope, condition, event_count_column
from jobs.engine.identities import flagged_primary, identity_map, key_columns, key_is_primary, with_identities
from jobs.engine.inputs import read_source, union_all
from jobs.engine.projection import project
from jobs.engine.stitching import Components, restitched
from jobs.planner import EventPlan, EventSource
from jobs.spec import fields_of, type_at

EVENT, EVENTS, EVENT_IDENTITIES = "_event", "_events", "_eventIdentityMap"
IN_WINDOW = "_inWindow"  # with conditions: the event is in the window of the events column


def _window(plan: EventPlan) -> Column | None:
    """The ingest window `(from, to)` as a condition (the seeds: after `from`, before `to`), or None
    when it is open."""
    bounds = []
    if plan.from_ingest is not None:
        bounds.append(F.col("_ingestTime") > F.lit(plan.from_ingest))
    if plan.to_ingest is not None:
        bounds.append(F.col("_ingestTime") < F.lit(plan.to_ingest))
    return bounds[0] & bounds[1] if len(bounds) == 2 else (bounds[0] if bounds else None)


def _qualifying(index: int) -> str:
    return f"_eventMeets{index}"


def keyed_events(df: DataFrame, source: EventSource, plan: EventPlan) -> DataFrame:
    """One dataset's events with key, identities and the projected event struct: those in the
    window, or, when the plan counts events, all of them with their window and condition flags."""
    if plan.before is not None:
        df = df.where(F.col("_ingestTime") < F.lit(plan.before))
    window = _window(plan)
    if window is not None and not plan.conditions:
        df = df.where(window)
    columns = [F.lit(source.dataset_id).alias(DATASET), *key_columns(plan.stitched, listed=False),
               F.col("_ingestTime")]
    if plan.conditions:
        assert plan.before is not None, "only an evaluating job counts events"
        scope = Scope(value=lambda path: column_as(df, path.parts, _event_type(plan, path.parts)), now=plan.before)
        columns += [condition(c, scope).alias(_qualifying(i)) for i, c in enumerate(plan.conditions)]
        columns.append((window if window is not None else F.lit(True)).alias(IN_WINDOW))
    if plan.projection is not None:
        merged = fields_of(plan.schema)
        order = F.struct(F.col("timestamp").alias("t"), F.col("_id").cast("string").alias("id"))
        event = F.struct(*[project(n, column_as(df, (n.name,), merged[n.name])).alias(n.name)
                           for n in plan.projection])
        columns.append(F.struct(order.alias("order"), event.alias("value")).alias(EVENT))
    return with_identities(df).select(*columns)


def _event_type(plan: EventPlan, path: tuple[str, ...]) -> str | dict[str, object]:
    found = type_at(plan.schema, path)
    assert found is not None, "pql.check found every event path in this schema"
    return found


def load_events(spark: SparkSession, plan: EventPlan, keep: Column | None = None) -> DataFrame:
    """All event datasets' keyed events, bad ones included (REJECT says why). `keep`: a condition on
    the events as stored (the suppression list's, privacy.not_suppressed)."""
    def read(source: EventSource) -> DataFrame:
        df = read_source(spark, source)
        return df if keep is None else df.where(keep)

    return union_all([keyed_events(read(s), s, plan) for s in plan.sources])


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


def events_by_key(events: DataFrame, plan: EventPlan, identities: bool,
                  components: Components | None = None) -> DataFrame:
    """One row per key: its events in time order (if asked), its identities (if asked), and
    how many of its events meet each of the plan's conditions.

    Under identityGraph pdg (`components`) events are grouped first by their own key (their
    smallest identity), in the same one shuffle of every event; those groups, one per
    identity, are then keyed by their component and grouped again, which is small.

    Sorting by the struct's natural order (`sort_array`, generated code) gives the
    same order as the comparator; a comparator lambda is needed only when the
    event holds a map, which Spark cannot order.
    """
    # collect_list skips nulls: with conditions, only the window's events are collected.
    windowed = (lambda c: F.when(F.col(IN_WINDOW), F.col(c))) if plan.conditions else F.col
    counts = [event_count_column(i) for i in range(len(plan.conditions))]
    aggregates = [F.count_if(F.col(_qualifying(i))).alias(c) for i, c in enumerate(counts)]
    if identities:
        aggregates.append(F.array_distinct(F.flatten(F.collect_list(windowed(IDS)))).alias(IDS))
        if components is not None:
            aggregates.append(F.array_distinct(F.flatten(F.collect_list(windowed(FLAGGED)))).alias(FLAGGED))
    if plan.projection is not None:
        aggregates.append(F.collect_list(windowed(EVENT)).alias(EVENTS))
    grouped = events.where(F.col(REJECT).isNull()).groupBy(KEY_NS, KEY_ID).agg(*aggregates)
    if components is not None:
        grouped = _by_component(grouped, components, plan, identities, counts)
    if plan.projection is not None:
        collected = F.col(EVENTS)
        in_order = (F.sort_array(collected) if _orderable(events.schema[EVENT].dataType)
                    else F.array_sort(collected, _earlier))
        grouped = grouped.withColumn(EVENTS, in_order["value"])
    if not identities:
        return grouped
    if components is None:
        event_map = identity_map(F.sort_array(F.col(IDS)), key_is_primary(F.col(KEY_NS), F.col(KEY_ID)))
    else:
        event_map = identity_map(F.coalesce(F.col(MEMBERS), F.sort_array(F.col(IDS))), flagged_primary(F.col(FLAGGED)))
    return grouped.withColumn(EVENT_IDENTITIES, event_map).drop(IDS, FLAGGED, MEMBERS)


def _by_component(grouped: DataFrame, components: Components, plan: EventPlan, identities: bool,
                  counts: list[str]) -> DataFrame:
    """Groups of events by identity, keyed by their component and grouped again (pdg)."""
    stitched = restitched(grouped, components)
    aggregates = [F.sum(c).alias(c) for c in counts]
    if identities:
        aggregates += [F.array_distinct(F.flatten(F.collect_list(IDS))).alias(IDS),
                       F.array_distinct(F.flatten(F.collect_list(FLAGGED))).alias(FLAGGED),
                       F.max(MEMBERS).alias(MEMBERS)]
    if plan.projection is not None:
        aggregates.append(F.flatten(F.collect_list(EVENTS)).alias(EVENTS))
    return stitched.groupBy(KEY_NS, KEY_ID).agg(*aggregates)
