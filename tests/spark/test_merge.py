"""Merging fragments into profiles: hand-written fragments, expected rows."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.engine import (
    KEY_ID,
    KEY_NS,
    REJECT,
    any_segment,
    keyed_fragments,
    merge_profiles,
    segment_column,
    select_members,
    union_all,
)
from jobs.planner import ProfileSource, SegmentSpec

from .helpers import FRAGMENT, ids, make_plan, member, schema_of, ts

pytestmark = pytest.mark.spark


def merged(spark, plan, *datasets):
    """Merge (source, rows) pairs as the engine does, from DataFrames instead of Delta tables."""
    frames = [keyed_fragments(spark.createDataFrame(rows, FRAGMENT), source, plan) for source, rows in datasets]
    return merge_profiles(union_all(frames), plan)


def fragment(key_map, ingest, first=None, last=None, email=None, memberships=None):
    return (key_map, ingest, memberships, {"name": {"firstName": first, "lastName": last}},
            {"address": email} if email else None)


def test_timestamp_ordered_takes_the_latest_non_null_value_per_leaf(spark):
    plan = make_plan(schema_of(spark))
    source = ProfileSource("a", "unused", 0)
    rows = [
        fragment(ids("A"), ts(1), first="Ada", last="Lovelace", email="ada@x.org"),
        fragment(ids("A"), ts(2), first="Adele"),  # later, but lastName and email are null
        fragment(ids("B"), ts(1), first="Bob"),
    ]
    actual = merged(spark, plan, (source, rows)).select(
        KEY_ID, "_ingestTime", "__person__name__firstName", "__person__name__lastName",
        "__personalEmail__address",
    )
    expected = spark.createDataFrame(
        [("A", ts(2), "Adele", "Lovelace", "ada@x.org"), ("B", ts(1), "Bob", None, None)],
        actual.schema,
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_timestamp_ordered_across_two_datasets_with_nulls(spark):
    plan = make_plan(schema_of(spark))
    a, b = ProfileSource("a", "unused", 0), ProfileSource("b", "unused", 0)
    actual = merged(
        spark, plan,
        (a, [fragment(ids("A"), ts(3), first="Newest", last=None)]),
        (b, [fragment(ids("A"), ts(1), first="Oldest", last="Kept", email="k@x.org")]),
    ).select(KEY_ID, "__person__name__firstName", "__person__name__lastName", "__personalEmail__address")
    assert actual.collect() == [("A", "Newest", "Kept", "k@x.org")]


def test_dataset_precedence_prefers_the_first_dataset_of_the_order(spark):
    plan = make_plan(schema_of(spark), merge="dataSetPrecedence")
    first, second = ProfileSource("first", "unused", 0), ProfileSource("second", "unused", 1)
    actual = merged(
        spark, plan,
        (first, [fragment(ids("A"), ts(1), first="FromFirst"), fragment(ids("A"), ts(2), first="FirstLater")]),
        (second, [fragment(ids("A"), ts(9), first="FromSecond", last="OnlyInSecond")]),
    ).select(KEY_ID, "__person__name__firstName", "__person__name__lastName")
    # Ties within a dataset go to the latest fragment; a null in the winner does not hide a value.
    assert actual.collect() == [("A", "FirstLater", "OnlyInSecond")]


def test_identity_map_is_the_union_with_the_key_as_only_primary(spark):
    plan = make_plan(schema_of(spark))
    source = ProfileSource("a", "unused", 0)
    rows = [
        fragment(ids("A", Email="a@x.org"), ts(1)),
        fragment(ids("A", CRMID="crm-1"), ts(2)),
    ]
    row = merged(spark, plan, (source, rows)).select("identityMap").first()
    assert row.identityMap == {
        "CRMID": [("crm-1", False)],
        "ECID": [("A", True)],
        "Email": [("a@x.org", False)],
    }


def test_fragments_without_exactly_one_primary_identity_are_rejected(spark):
    plan = make_plan(schema_of(spark))
    source = ProfileSource("a", "unused", 0)
    two = {"ECID": [{"id": "A", "primary": True}], "Email": [{"id": "e", "primary": True}]}
    rows = [
        fragment(ids("A"), ts(1)),
        fragment({"ECID": [{"id": "X", "primary": False}]}, ts(1)),
        fragment(two, ts(1)),
        fragment(None, ts(1)),
    ]
    keyed = keyed_fragments(spark.createDataFrame(rows, FRAGMENT), source, plan)
    reasons = sorted((r[REJECT] or "") for r in keyed.select(REJECT).collect())
    assert reasons == ["", "2 primary identities; a fragment needs exactly one",
                       "no primary identity", "no primary identity"]
    assert [r[KEY_ID] for r in merge_profiles(keyed, plan).select(KEY_ID).collect()] == ["A"]


def test_requested_memberships_merge_per_segment_latest_wins(spark):
    segments = [SegmentSpec("ups", "s1", ("realized",), "b"), SegmentSpec("ups", "s2", ("realized",), "b")]
    plan = make_plan(schema_of(spark), segments=segments)
    source = ProfileSource("a", "unused", 0)
    rows = [
        fragment(ids("A"), ts(1), memberships={"ups": {"s1": member("realized", ts(1)), "s3": member("realized")}}),
        fragment(ids("A"), ts(2),
                 memberships={"ups": {"s1": member("exited", ts(2)), "s2": member("existing", ts(2))}}),
        fragment(ids("A"), ts(3), memberships=None),
    ]
    row = merged(spark, plan, (source, rows)).first()
    assert row[segment_column("ups", "s1")] == ("exited", ts(2).replace(tzinfo=None))
    # Only the segments the job names are kept.
    assert row.segmentMembership == {
        "ups": {"s1": ("exited", ts(2).replace(tzinfo=None)), "s2": ("existing", ts(2).replace(tzinfo=None))}
    }


def test_requested_memberships_of_two_namespaces_keep_only_those_that_exist(spark):
    segments = [SegmentSpec("ups", "s1", ("realized",), "b"), SegmentSpec("AAM", "x", ("existing",), "b")]
    plan = make_plan(schema_of(spark), segments=segments)
    source = ProfileSource("a", "unused", 0)
    rows = [
        fragment(ids("A"), ts(1), memberships={"ups": {"s1": member("realized")}, "AAM": {"x": member("existing")}}),
        fragment(ids("B"), ts(1), memberships={"AAM": {"x": member("existing")}}),
        fragment(ids("C"), ts(1), memberships={"ups": {"s9": member("realized")}}),
    ]
    found = {r[KEY_ID]: r.segmentMembership for r in merged(spark, plan, (source, rows)).collect()}
    assert found == {
        "A": {"ups": {"s1": ("realized", None)}, "AAM": {"x": ("existing", None)}},
        "B": {"AAM": {"x": ("existing", None)}},
        "C": None,
    }


@pytest.mark.parametrize("odd", ["seg.with.dots", "a`b", 'q"uote', "br[0]", "sp ace"])
def test_any_segment_id_merges_and_matches(spark, odd):
    """Segment ids become working column names: a dot or a backtick must not make one unreadable."""
    segments = [SegmentSpec("ups", odd, ("realized",), "b")]
    plan = make_plan(schema_of(spark), segments=segments)
    rows = [fragment(ids("A"), ts(1), memberships={"ups": {odd: member("realized", ts(1))}}),
            fragment(ids("B"), ts(1), memberships={"ups": {"other": member("realized", ts(1))}})]
    chosen = select_members(merged(spark, plan, (ProfileSource("a", "unused", 0), rows)), plan)
    assert [(r[KEY_ID], r.segmentMembership) for r in chosen.collect()] == [
        ("A", {"ups": {odd: ("realized", ts(1).replace(tzinfo=None))}})]


def test_all_memberships_merge_per_namespace_and_segment_when_no_segment_is_named(spark):
    plan = make_plan(schema_of(spark))
    source = ProfileSource("a", "unused", 0)
    rows = [
        fragment(ids("A"), ts(1), memberships={"ups": {"s1": member("realized"), "s2": member("realized")},
                                               "AAM": {"x": member("existing")}}),
        fragment(ids("A"), ts(2), memberships={"ups": {"s1": member("exited")}}),
    ]
    row = merged(spark, plan, (source, rows)).select("segmentMembership").first()
    assert row.segmentMembership == {
        "ups": {"s1": ("exited", None), "s2": ("realized", None)},
        "AAM": {"x": ("existing", None)},
    }


def test_datasets_with_different_attribute_columns_are_merged_by_name(spark):
    other = "identityMap map<string, array<struct<id: string, primary: boolean>>>, _ingestTime timestamp, " \
            "personalEmail struct<address: string, type: string>"
    a_df = spark.createDataFrame([fragment(ids("A"), ts(1), first="Ada")], FRAGMENT)
    b_df = spark.createDataFrame([(ids("A"), ts(2), {"address": "new@x.org", "type": "work"})], other)
    from jobs.spec import union_schemas

    schema = union_schemas([("a", a_df.schema.jsonValue()), ("b", b_df.schema.jsonValue())])
    plan = make_plan(schema)
    a, b = ProfileSource("a", "unused", 0), ProfileSource("b", "unused", 0)
    union = keyed_fragments(a_df, a, plan).unionByName(keyed_fragments(b_df, b, plan))
    row = merge_profiles(union, plan).select(
        "__person__name__firstName", "__personalEmail__address", "__personalEmail__type",
        F.size("segmentMembership").alias("n"),
    ).first()
    assert row is not None
    assert (row[0], row[1], row[2]) == ("Ada", "new@x.org", "work")


def test_candidates_keep_every_fragment_of_a_key_that_may_qualify_and_drop_the_rest(spark):
    plan = make_plan(schema_of(spark), segments=[SegmentSpec("ups", "s1", ("realized",), "b")])
    source = ProfileSource("a", "unused", 0)
    rows = [
        # A qualified in an old fragment; its newest fragment has no membership but the newest email.
        fragment(ids("A"), ts(1), email="old@a", memberships={"ups": {"s1": member("realized", ts(1))}}),
        fragment(ids("A"), ts(2), email="new@a"),
        # B's only membership does not qualify; C has none.
        fragment(ids("B"), ts(1), email="b@b", memberships={"ups": {"s1": member("exited", ts(1))}}),
        fragment(ids("C"), ts(1), email="c@c"),
    ]
    keyed = keyed_fragments(spark.createDataFrame(rows, FRAGMENT), source, plan)
    narrow = merge_profiles(keyed, plan, any_segment(plan)).select(KEY_ID, "__personalEmail__address")
    assert sorted(tuple(r) for r in narrow.collect()) == [("A", "new@a")]
    # The same row as the full merge gives for A.
    full = merge_profiles(keyed, plan).where(F.col(KEY_ID) == "A").select(KEY_ID, "__personalEmail__address")
    assert_df_equality(narrow, full, ignore_nullable=True)


def test_an_incremental_jobs_keys_keep_their_good_fragments_and_every_rejected_one(spark):
    plan = make_plan(schema_of(spark))
    source = ProfileSource("a", "unused", 0)
    rows = [
        fragment(ids("A"), ts(1), email="old@a"),
        fragment(ids("A"), ts(2), email="new@a"),
        fragment(ids("B"), ts(1), email="b@b"),
        fragment({"ECID": [{"id": "X", "primary": False}]}, ts(1)),
    ]
    fragments = spark.createDataFrame(rows, FRAGMENT)
    changed = spark.createDataFrame([("ECID", "A")], f"{KEY_NS} string, {KEY_ID} string")
    keyed = keyed_fragments(fragments, source, plan, changed)
    # The same columns and rows as keying every fragment gives, but B's (Spark sorts no maps: compared apart).
    every = keyed_fragments(fragments, source, plan).where((F.col(KEY_ID) != "B") | F.col(REJECT).isNotNull())
    assert keyed.columns == every.columns
    assert_df_equality(keyed.drop("segmentMembership"), every.drop("segmentMembership"), ignore_row_order=True,
                       ignore_nullable=True)
    assert sorted((r[KEY_ID] or "", r[REJECT] or "") for r in keyed.collect()) == [
        ("", "no primary identity"), ("A", ""), ("A", "")]
    merged_a = merge_profiles(keyed, plan).select(KEY_ID, "__personalEmail__address")
    assert [tuple(r) for r in merged_a.collect()] == [("A", "new@a")]
