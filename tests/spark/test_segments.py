"""Segment matching: each status, the qualification window's edges, batch tagging."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.engine import BATCH, MEMBERSHIP, segment_column, select_members, tag_batches
from jobs.planner import SegmentSpec

from .helpers import make_plan, member, ts

pytestmark = pytest.mark.spark

S1, S2 = segment_column("ups", "s1"), segment_column("ups", "s2")
SCHEMA = f"key string, _ingestTime timestamp, `{S1}` {MEMBERSHIP}, `{S2}` {MEMBERSHIP}"
EMPTY_SCHEMA = {"type": "struct", "fields": []}


def members(spark, plan, rows):
    df = spark.createDataFrame(rows, SCHEMA)
    return select_members(df, plan)


def keys(df) -> list:
    return sorted(r.key for r in df.select("key").collect())


@pytest.mark.parametrize("status", ["realized", "existing", "exited"])
def test_each_status_matches_only_when_listed(spark, status):
    rows = [("p-" + s, ts(1), member(s, ts(1)), None) for s in ("realized", "existing", "exited")]
    plan = make_plan(EMPTY_SCHEMA, segments=[SegmentSpec("ups", "s1", (status,), "b1")])
    assert keys(members(spark, plan, rows)) == ["p-" + status]


def test_default_statuses_keep_realized_and_existing(spark):
    rows = [("p-" + s, ts(1), member(s, ts(1)), None) for s in ("realized", "existing", "exited")]
    plan = make_plan(EMPTY_SCHEMA, segments=[SegmentSpec("ups", "s1", ("realized", "existing"), "b1")])
    assert keys(members(spark, plan, rows)) == ["p-existing", "p-realized"]


def test_qualification_window_includes_both_edges(spark):
    start, end = ts(10), ts(20)
    rows = [
        ("before", ts(1), member("realized", ts(9, 23, 59)), None),
        ("at-start", ts(1), member("realized", start), None),
        ("inside", ts(1), member("realized", ts(15)), None),
        ("at-end", ts(1), member("realized", end), None),
        ("after", ts(1), member("realized", ts(20, 0, 1)), None),
        ("no-time", ts(1), member("realized", None), None),
    ]
    segment = [SegmentSpec("ups", "s1", ("realized",), "b1")]
    plan = make_plan(EMPTY_SCHEMA, segments=segment, qualified_from=start, qualified_to=end)
    assert keys(members(spark, plan, rows)) == ["at-end", "at-start", "inside"]
    open_start = make_plan(EMPTY_SCHEMA, segments=segment, qualified_to=end)
    assert keys(members(spark, open_start, rows)) == ["at-end", "at-start", "before", "inside"]
    open_end = make_plan(EMPTY_SCHEMA, segments=segment, qualified_from=start)
    assert keys(members(spark, open_end, rows)) == ["after", "at-end", "at-start", "inside"]


def test_from_ingest_timestamp_is_strictly_greater(spark):
    rows = [("equal", ts(5), None, None), ("later", ts(5, 0, 1), None, None), ("earlier", ts(4), None, None)]
    plan = make_plan(EMPTY_SCHEMA, from_ingest=ts(5))
    assert keys(members(spark, plan, rows)) == ["later"]


def test_no_segments_exports_every_profile_in_the_combined_batch(spark):
    rows = [("a", ts(1), None, None), ("b", ts(1), member("exited", ts(1)), None)]
    plan = make_plan(EMPTY_SCHEMA)
    out = tag_batches(members(spark, plan, rows), plan, [F.col("key")])
    expected = spark.createDataFrame([("combined", "a"), ("combined", "b")], out.schema)
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_combined_mode_keeps_a_profile_once_when_it_matches_two_segments(spark):
    rows = [("both", ts(1), member("realized", ts(1)), member("realized", ts(1))),
            ("one", ts(1), None, member("existing", ts(1))),
            ("none", ts(1), member("exited", ts(1)), None)]
    segments = [SegmentSpec("ups", "s1", ("realized",), "b"), SegmentSpec("ups", "s2", ("realized", "existing"), "b")]
    plan = make_plan(EMPTY_SCHEMA, segments=segments)
    out = tag_batches(members(spark, plan, rows), plan, [F.col("key")])
    assert sorted((r.key, r[BATCH]) for r in out.collect()) == [("both", "b"), ("one", "b")]


def test_per_segment_mode_puts_a_profile_in_each_batch_it_matches(spark):
    rows = [("both", ts(1), member("realized", ts(1)), member("realized", ts(1))),
            ("one", ts(1), None, member("existing", ts(1)))]
    segments = [SegmentSpec("ups", "s1", ("realized",), "b1"), SegmentSpec("ups", "s2", ("realized", "existing"), "b2")]
    plan = make_plan(EMPTY_SCHEMA, segments=segments, per_segment=True)
    out = tag_batches(members(spark, plan, rows), plan, [F.col("key")])
    assert sorted((r.key, r[BATCH]) for r in out.collect()) == [("both", "b1"), ("both", "b2"), ("one", "b2")]
