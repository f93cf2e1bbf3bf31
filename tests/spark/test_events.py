"""Events per profile: ingest window (from, to), requested fields, order, bad events."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality

from jobs.engine import EVENT_IDENTITIES, EVENTS, KEY_ID, REJECT, events_by_key, keyed_events
from jobs.planner import EventPlan, EventSource
from jobs.spec import EVENT_SYSTEM_COLUMNS, parse_field_list, projection

from .helpers import ids, ts

pytestmark = pytest.mark.spark

EVENT = (
    "_id string, timestamp timestamp, _ingestTime timestamp, "
    "identityMap map<string, array<struct<id: string, primary: boolean>>>, eventType string, "
    "web struct<webPageDetails: struct<URL: string, name: string>>"
)


def event(event_id, happened, ingested, identity_map, url="u"):
    return (event_id, happened, ingested, identity_map, "view", {"webPageDetails": {"URL": url, "name": "n"}})


def plan_for(spark, fields, **window):
    schema = spark.createDataFrame([], EVENT).schema.jsonValue()
    nodes = projection(schema, parse_field_list(fields), EVENT_SYSTEM_COLUMNS) if fields else None
    return EventPlan((EventSource("web", "unused"),), schema, nodes, window.get("low"), window.get("high"))


def by_key(spark, plan, rows):
    keyed = keyed_events(spark.createDataFrame(rows, EVENT), plan.sources[0], plan)
    return keyed, events_by_key(keyed, plan, identities=True)


def test_events_in_the_window_are_projected_and_ordered_by_timestamp(spark):
    plan = plan_for(spark, "_id, web.webPageDetails.URL", low=ts(2), high=ts(8))
    rows = [
        event("e1", ts(3), ts(5), ids("A"), url="late"),
        event("e2", ts(1), ts(6), ids("A", Email="a@x.org"), url="early"),
        event("at-low", ts(1), ts(2), ids("A")),  # ingested at `from`: excluded
        event("at-high", ts(9), ts(8), ids("A")),  # ingested at `to`: excluded (the seeds: "before")
        event("below-high", ts(9), ts(7, 23, 59), ids("A"), url="edge"),
        event("after", ts(1), ts(8, 0, 1), ids("A")),
        event("b1", ts(1), ts(4), ids("B")),
    ]
    _, grouped = by_key(spark, plan, rows)
    actual = grouped.select(KEY_ID, EVENTS)
    expected = spark.createDataFrame(
        [("A", [("e2", {"webPageDetails": {"URL": "early"}}), ("e1", {"webPageDetails": {"URL": "late"}}),
                ("below-high", {"webPageDetails": {"URL": "edge"}})]),
         ("B", [("b1", {"webPageDetails": {"URL": "u"}})])],
        "_keyId string, _events array<struct<_id: string, web: struct<webPageDetails: struct<URL: string>>>>",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    identities = {r[KEY_ID]: r[EVENT_IDENTITIES] for r in grouped.collect()}
    assert identities["A"] == {"ECID": [("A", True)], "Email": [("a@x.org", False)]}


def test_events_without_exactly_one_primary_identity_are_rejected(spark):
    plan = plan_for(spark, "_id")
    rows = [event("good", ts(1), ts(1), ids("A")),
            event("bad", ts(1), ts(1), {"ECID": [{"id": "X", "primary": False}]})]
    keyed, grouped = by_key(spark, plan, rows)
    assert [r[REJECT] for r in keyed.where("_keyId is null").collect()] == ["no primary identity"]
    assert [r[KEY_ID] for r in grouped.collect()] == ["A"]


def test_without_an_event_list_only_keys_and_identities_are_kept(spark):
    plan = plan_for(spark, None)
    _, grouped = by_key(spark, plan, [event("e", ts(1), ts(1), ids("A"))])
    assert EVENTS not in grouped.columns and grouped.count() == 1
