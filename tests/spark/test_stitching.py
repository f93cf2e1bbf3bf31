"""Identity stitching (identityGraph pdg) on tiny hand-written graphs: components, keys, the cap,
and profiles merged across datasets and events."""

from __future__ import annotations

from dataclasses import replace

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.engine import (
    DST,
    IDS,
    KEY_ID,
    KEY_NS,
    LABEL,
    NODE,
    SIZE,
    SRC,
    GraphDidNotConverge,
    connected_components,
    converged,
    events_by_key,
    keyed_events,
    keyed_fragments,
    links,
    profiles_of,
    union_all,
)
from jobs.planner import EventPlan, EventSource, ProfileSource, StitchPlan
from jobs.spec import projection, struct_of

from .helpers import FRAGMENT, make_plan, schema_of, ts

pytestmark = pytest.mark.spark

IDS_ONLY = f"{IDS} array<struct<ns: string, id: string>>"


def ident(text: str) -> dict:
    ns, _, value = text.partition(":")
    return {"ns": ns, "id": value}


def graph(spark, *records: list[str], cap: int = 50, rounds: int = 30):
    df = spark.createDataFrame([([ident(i) for i in r],) for r in records], IDS_ONLY)
    return connected_components(links(df), cap, rounds)


def labels(components) -> dict[str, tuple[str, int]]:
    return {f"{r[NODE]['ns']}:{r[NODE]['id']}": (f"{r[LABEL]['ns']}:{r[LABEL]['id']}", r[SIZE])
            for r in components.labels.collect()}


def test_a_chain_of_records_is_one_component_keyed_by_its_smallest_identity(spark):
    found = labels(graph(spark, ["ECID:a", "Email:x"], ["Email:x", "CRMID:c"], ["CRMID:c", "Phone:p"]))
    # Identities order by namespace, then id: CRMID < ECID < Email < Phone.
    assert found == dict.fromkeys(("CRMID:c", "ECID:a", "Email:x", "Phone:p"), ("CRMID:c", 4))


def test_a_cycle_and_a_long_chain_converge(spark):
    cycle = labels(graph(spark, ["ECID:a", "ECID:b"], ["ECID:b", "ECID:c"], ["ECID:c", "ECID:a"]))
    assert set(cycle.values()) == {("ECID:a", 3)}
    chain = [[f"ECID:{i:02d}", f"ECID:{i + 1:02d}"] for i in range(20)]
    found = graph(spark, *reversed(chain))
    assert set(labels(found).values()) == {("ECID:00", 21)} and found.rounds > 1
    with pytest.raises(GraphDidNotConverge, match="did not converge in 1 rounds"):
        graph(spark, *reversed(chain), rounds=1)


def test_the_rounds_stop_once_the_edges_are_stars(spark):
    one = graph(spark, ["ECID:a", "Email:x", "CRMID:c"], ["Phone:p", "CRMID:c"])
    assert one.rounds == 1 and set(labels(one).values()) == {("CRMID:c", 4)}

    def stars(*edges: tuple[str, str]) -> bool:
        schema = f"{SRC} struct<ns: string, id: string>, {DST} struct<ns: string, id: string>"
        return converged(spark.createDataFrame([(ident(a), ident(b)) for a, b in edges], schema))

    assert stars(("ECID:b", "ECID:a"), ("ECID:c", "ECID:a"), ("ECID:e", "ECID:d"))
    assert not stars(("ECID:c", "ECID:b"), ("ECID:b", "ECID:a"))  # b has an edge in and one out
    assert not stars(("ECID:c", "ECID:a"), ("ECID:c", "ECID:b"))  # c has two edges out


def test_the_same_id_in_two_namespaces_is_two_nodes(spark):
    found = labels(graph(spark, ["ECID:1", "Email:1"], ["CRMID:1", "Phone:1"]))
    assert found["Email:1"] == ("ECID:1", 2) and found["Phone:1"] == ("CRMID:1", 2)


def test_a_hub_over_the_cap_is_excluded_and_reported(spark):
    hub = [["Email:shared@x.org", f"ECID:{i}"] for i in range(6)]
    found = graph(spark, *hub, ["ECID:solo", "CRMID:s"], cap=5)
    assert found.excluded == 1 and found.excluded_examples == [("ECID", "0", 7)]
    assert labels(found)["CRMID:s"] == ("CRMID:s", 2)


def fragments(spark, plan, source, rows):
    df = spark.createDataFrame([(ids_, ingest, None, {"name": {"firstName": first, "lastName": None}}, None)
                                for ids_, ingest, first in rows], FRAGMENT)
    return keyed_fragments(df, source, plan)


def identity_map(*entries: tuple[str, str, bool]) -> dict:
    out: dict = {}
    for ns, value, primary in entries:
        out.setdefault(ns, []).append({"id": value, "primary": primary})
    return out


def stitched_plan(spark, **changes):
    stitching = StitchPlan(profile_sources=(), event_sources=(), max_identities=50, max_iterations=30)
    return replace(make_plan(schema_of(spark), fields=[("person", "name", "firstName")]), stitching=stitching,
                   **changes)


def test_fragments_and_an_event_are_merged_into_their_component(spark):
    plan = stitched_plan(spark)
    a, b = ProfileSource("a", "unused", 0), ProfileSource("b", "unused", 0)
    frags = union_all([
        fragments(spark, plan, a, [(identity_map(("ECID", "e1", True)), ts(1), "Ada"),
                                   (identity_map(("ECID", "e2", True)), ts(2), None),
                                   (identity_map(("ECID", "solo", True)), ts(1), "Solo")]),
        fragments(spark, plan, b, [(identity_map(("Email", "ada@x.org", True), ("ECID", "e1", False)), ts(3),
                                    "Adeline"),
                                   ({}, ts(1), "nobody")]),
    ])
    # Only an event links e2 to the rest.
    event_links = spark.createDataFrame([([ident("ECID:e2"), ident("Email:ada@x.org")],)], IDS_ONLY)
    components = connected_components(
        links(union_all([frags.select(IDS), event_links])), plan.stitching.max_identities, 30)
    profiles = profiles_of(frags, plan, components=components)
    rows = {r[KEY_ID]: r for r in profiles.select(KEY_NS, KEY_ID, "__person__name__firstName", "identityMap")
            .collect()}
    assert set(rows) == {"e1", "solo"}
    assert rows["e1"][KEY_NS] == "ECID" and rows["e1"]["__person__name__firstName"] == "Adeline"
    # Every identity of the component, primary where a fragment ingested it as primary.
    assert {ns: sorted((i["id"], i["primary"]) for i in ids_) for ns, ids_ in rows["e1"]["identityMap"].items()} \
        == {"ECID": [("e1", True), ("e2", True)], "Email": [("ada@x.org", True)]}
    rejected = frags.where(F.col("_reject").isNotNull()).select("_reject").collect()
    assert [r._reject for r in rejected] == ["no identity; under identityGraph pdg a record needs at least one"]


def test_events_are_grouped_by_identity_then_by_component(spark):
    schema = struct_of({"_id": "string", "timestamp": "timestamp", "_ingestTime": "timestamp"})
    plan = EventPlan(sources=(EventSource("e", "unused"),), schema=schema,
                     projection=projection(schema, [("_id",)], ("identityMap",)), from_ingest=None, to_ingest=None,
                     stitched=True)
    rows = [(identity_map(("ECID", "e2", True)), "late", ts(5), ts(5)),
            (identity_map(("ECID", "e1", True)), "early", ts(1), ts(1)),
            (identity_map(("Email", "x", True)), "mid", ts(3), ts(3))]
    events = keyed_events(spark.createDataFrame(
        rows, "identityMap map<string, array<struct<id: string, primary: boolean>>>, _id string, "
              "timestamp timestamp, _ingestTime timestamp"), plan.sources[0], plan)
    components = graph(spark, ["ECID:e1", "ECID:e2"], ["ECID:e2", "Email:x"])
    grouped = events_by_key(events, plan, identities=True, components=components)
    expected = spark.createDataFrame([("ECID", "e1", [{"_id": "early"}, {"_id": "mid"}, {"_id": "late"}])],
                                     f"{KEY_NS} string, {KEY_ID} string, _events array<struct<_id: string>>")
    assert_df_equality(grouped.select(KEY_NS, KEY_ID, "_events"), expected, ignore_nullable=True)
    [row] = grouped.collect()
    assert {ns: sorted(i["id"] for i in ids_) for ns, ids_ in row["_eventIdentityMap"].items()} == {
        "ECID": ["e1", "e2"], "Email": ["x"]}
