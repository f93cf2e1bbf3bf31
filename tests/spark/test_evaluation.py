"""Segment evaluation in Spark: compiled PQL on hand-written rows (nulls included), the status
table as one CASE, event counts in the events' one grouping, and the write-back rows."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.engine import (
    KEY_ID,
    KEY_NS,
    Scope,
    condition,
    evaluate,
    evaluated_membership,
    event_count_column,
    events_by_key,
    flattened,
    keyed_events,
    segment_column,
    unflattened,
    writeback_rows,
)
from jobs.planner import EvaluatedSegment, EvaluationPlan, EventPlan, EventSource, SegmentSpec
from jobs.spec import TRANSITIONS, Membership, leaf_column, next_membership, pql, projection, struct_of

from .helpers import ids, make_plan, schema_of, ts

pytestmark = pytest.mark.spark

NOW = datetime(2024, 1, 31, tzinfo=UTC)
LEAVES = (f"{leaf_column(('tier',))} string, {leaf_column(('points',))} long, "
          f"{leaf_column(('seen',))} timestamp, {leaf_column(('vip',))} boolean")
ROWS = [  # tier, points, seen, vip
    ("gold", 10, ts(30), True),
    ("Silver", None, ts(1), False),
    (None, 3, None, None),
]
SCOPE = Scope(value=lambda path: F.col(leaf_column(path.parts)), now=NOW)


@pytest.mark.parametrize("text, expected", [
    ('tier = "gold"', [True, False, False]),
    ('tier != "gold"', [False, True, False]),  # a comparison with null is false
    ('not(tier = "gold")', [False, True, True]),  # ... so its negation is true
    ("points >= 3", [True, False, True]),
    ("points < 5 or vip", [True, False, True]),
    ('tier in ["gold", "Silver"]', [True, True, False]),
    ('tier notIn ["gold"]', [False, True, False]),  # false when tier is null
    ("tier.isNull()", [False, False, True]),
    ("points.isNotNull()", [True, False, True]),
    ('tier.startsWith("sil")', [False, False, False]),
    ('tier.startsWith("sil", false)', [False, True, False]),
    ('tier.endsWith("D", false)', [True, False, False]),
    ('tier.contains("ol")', [True, False, False]),
    ('tier.equals("GOLD", false)', [True, False, False]),
    ('tier like "%i_ver"', [False, True, False]),
    ("seen occurs < 7 days before now", [True, False, False]),
    ("seen occurs > 7 days before now", [False, True, False]),
    ("seen occurs between date(2024, 1, 1) and date(2024, 1, 1)", [False, True, False]),
    ("seen occurs between date(2024, 1, 2) and date(2024, 1, 30)", [True, False, False]),
    ("vip", [True, False, False]),
    ("vip = false", [False, True, False]),
])
def test_compiled_conditions_on_hand_written_rows(spark, text, expected):
    df = spark.createDataFrame(ROWS, LEAVES)
    result = df.select(condition(pql.parse(text), SCOPE).alias("q")).collect()
    assert [r.q for r in result] == expected


LIKE_VALUES = ["", "a", "ab", "abc", "aXbXc", "a%b", "a_b", "a\\b", "ba", "abab", "aab", "a\nb", "naïve", "a.b*c"]
LIKE_PATTERNS = ["a", "%", "%%", "a%", "%b", "%a%", "a%b", "a_b", "_", "__", "%a%b%", "a%b%c", "%b%a", "a%%b",
                 "a\\%b", "a\\_b", "a\\\\b", "%.%", "na_ve", "a%a%b", "%ab%ab%", "_%_", "a.b*c"]


def test_like_matches_what_sparks_own_like_matches(spark):
    df = spark.createDataFrame([(v,) for v in LIKE_VALUES], "v string")
    for pattern in LIKE_PATTERNS:
        ours = condition(pql.Like(0, 1, pql.Path(0, 1, ("v",)), pattern), Scope(value=lambda p: F.col("v"), now=NOW))
        rows = df.select("v", ours.alias("ours"), F.col("v").like(pattern).alias("spark")).collect()
        assert [(r.v, r.ours) for r in rows] == [(r.v, r.spark) for r in rows], pattern


def test_a_like_pattern_with_many_wildcards_costs_linear_time(spark):
    """Spark's like turns `%a%a...%b` into a backtracking regex: exponential in the wildcards on a value
    of a's. The 16 wildcards PQL allows, on 10,000 such values, take seconds here."""
    text = 'tier like "' + "%a" * 15 + '%b"'
    df = spark.range(10_000).select(F.lit("a" * 200).alias(leaf_column(("tier",))))
    started = time.perf_counter()
    assert df.where(condition(pql.parse(text), SCOPE)).count() == 0
    assert time.perf_counter() - started < 60


def test_the_status_case_is_the_status_table(spark):
    earlier = ts(1)
    cases = [(None if before is None else Membership(before, earlier), q) for before, q in TRANSITIONS]
    rows = [({"status": m.status, "lastQualificationTime": m.last_qualification_time} if m else None, q)
            for m, q in cases]
    df = spark.createDataFrame(rows, "prev struct<status: string, lastQualificationTime: timestamp>, q boolean")
    actual = df.select(evaluated_membership(F.col("prev"), F.col("q"), NOW).alias("new")).collect()
    expected = [next_membership(m, q, NOW) for m, q in cases]
    assert [(r.new.status, r.new.lastQualificationTime.replace(tzinfo=UTC)) if r.new else None for r in actual] == \
        [(e.status, e.last_qualification_time) if e else None for e in expected]


EVENT_SCHEMA = struct_of({"_id": "string", "timestamp": "timestamp", "_ingestTime": "timestamp",
                          "eventType": "string"})
EVENTS = "identityMap map<string, array<struct<id: string, primary: boolean>>>, _id string, timestamp timestamp, " \
         "_ingestTime timestamp, eventType string"


def test_events_are_counted_whatever_the_window_and_collected_in_it(spark):
    rows = [(ids("A"), "e1", ts(1), ts(1), "buy"), (ids("A"), "e2", ts(5), ts(5), "buy"),
            (ids("A"), "e3", ts(6), ts(6), "view"), (ids("B"), "e4", ts(2), ts(2), "view"),
            (ids("A"), "late", ts(9), NOW, "buy")]  # ingested at `now`: not read
    plan = EventPlan(sources=(EventSource("e", "unused"),), schema=EVENT_SCHEMA,
                     projection=projection(EVENT_SCHEMA, [("_id",)], ("identityMap",)),
                     from_ingest=ts(4), to_ingest=None,
                     conditions=(pql.parse('eventType = "buy"'),), before=NOW)
    keyed = keyed_events(spark.createDataFrame(rows, EVENTS), plan.sources[0], plan)
    grouped = events_by_key(keyed, plan, identities=False).select(KEY_ID, event_count_column(0), "_events")
    counted = event_count_column(0)
    expected = spark.createDataFrame([("A", 2, [{"_id": "e2"}, {"_id": "e3"}]), ("B", 0, [])],
                                     f"{KEY_ID} string, {counted} long, _events array<struct<_id: string>>")
    assert_df_equality(grouped, expected, ignore_row_order=True, ignore_nullable=True)


def test_evaluate_replaces_memberships_and_writes_back_what_changed(spark):
    gold, fan = "gold", "fan"
    evaluation = EvaluationPlan(now=NOW, segments=(
        EvaluatedSegment(gold, pql.parse('tier = "gold"')),
        EvaluatedSegment(fan, pql.parse(f'inSegment("{gold}") or points > 5')),
    ), writeback_path="unused", writeback_txn_app_id="t", writeback_metadata="{}")
    plan = replace(make_plan(schema_of(spark), segments=[SegmentSpec("ups", gold, ("realized",), "b"),
                                                          SegmentSpec("ups", fan, ("realized",), "b")]),
                   evaluation=evaluation)
    member = "struct<status: string, lastQualificationTime: timestamp>"
    profiles = spark.createDataFrame(
        [("ECID", "A", "gold", 1, None, None),
         ("ECID", "B", "silver", 9, {"status": "realized", "lastQualificationTime": ts(1)}, None),
         ("ECID", "C", None, 1, None, {"status": "existing", "lastQualificationTime": ts(2)})],
        f"{KEY_NS} string, {KEY_ID} string, {leaf_column(('tier',))} string, {leaf_column(('points',))} long, "
        f"`{segment_column('ups', gold)}` {member}, `{segment_column('ups', fan)}` {member}")
    out = evaluate(profiles, plan)
    states = {r[KEY_ID]: (r[segment_column("ups", gold)], r[segment_column("ups", fan)])
              for r in out.collect()}
    status = {k: tuple(m.status if m else None for m in v) for k, v in states.items()}
    # A qualifies for gold, and for fan through gold's new membership; B leaves gold; C leaves fan.
    assert status == {"A": ("realized", "realized"), "B": ("exited", "realized"), "C": (None, "exited")}
    written = {r.identityMap["ECID"][0]["id"]: dict(r.segmentMembership["ups"]) for r in
               writeback_rows(out, evaluation).collect()}
    assert {k: {s: m.status for s, m in v.items()} for k, v in written.items()} == {
        "A": {"gold": "realized", "fan": "realized"}, "B": {"gold": "exited", "fan": "realized"},
        "C": {"fan": "exited"}}
    assert all(r.identityMap["ECID"][0]["primary"] for r in writeback_rows(out, evaluation).collect())
    # Kept between the two commits in flat columns, the profiles come back as they were.
    back = unflattened(flattened(out, plan), plan).select(*out.columns)
    assert sorted(back.collect(), key=lambda r: r[KEY_ID]) == sorted(out.collect(), key=lambda r: r[KEY_ID])
