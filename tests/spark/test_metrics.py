"""The exported rows' counters, observed on the rows as they are written."""

from __future__ import annotations

import pytest
from pyspark.sql import Observation
from pyspark.sql import functions as F

from jobs.engine import MEMBERSHIP, ExportCounters, ExportedCounts, observed, segment_column
from jobs.planner import SegmentSpec

from .helpers import ids, make_plan, member, ts

pytestmark = pytest.mark.spark

S1, S2 = SegmentSpec("ups", "s1", ("realized",), "b1"), SegmentSpec("ups", "s2", ("realized",), "b2")
MEMBERS = (f"identityMap map<string, array<struct<id: string, primary: boolean>>>, "
           f"`{segment_column('ups', 's1')}` {MEMBERSHIP}, `{segment_column('ups', 's2')}` {MEMBERSHIP}")
EMPTY_SCHEMA = {"type": "struct", "fields": []}
IN = member("realized", ts(1))
ROWS = [
    (ids("A", Email="a@x.org"), IN, IN),
    (ids("B"), IN, None),
    (ids("C", Email="c@x.org", CRMID="c"), None, IN),
]


def counted(spark, plan, namespaces, rows=ROWS):
    counters = ExportCounters(plan, namespaces)
    counters.observe(spark.createDataFrame(rows, MEMBERS)).write.format("noop").mode("overwrite").save()
    return counters.counts()


def test_a_combined_batch_counts_profiles_and_namespaces(spark):
    combined = [SegmentSpec(s.namespace, s.segment_id, s.statuses, "b") for s in (S1, S2)]
    plan = make_plan(EMPTY_SCHEMA, segments=combined)
    assert counted(spark, plan, ("CRMID", "ECID", "Email", "Phone")) == ExportedCounts(
        3, {"CRMID": 1, "ECID": 3, "Email": 2}, {"b": 3}, {})


def test_a_combined_batch_counts_the_members_of_its_counted_segments_zero_too(spark):
    combined = [SegmentSpec(s.namespace, s.segment_id, s.statuses, "b") for s in (S1, S2)]
    plan = make_plan(EMPTY_SCHEMA, segments=combined, counted=combined[1:])
    counts = counted(spark, plan, ("CRMID", "ECID", "Email"), rows=[ROWS[1]])
    assert counts is not None and counts.by_segment == {("ups", "s2"): 0}


def test_per_segment_batches_count_their_rows_and_profiles_once(spark):
    plan = make_plan(EMPTY_SCHEMA, segments=[S1, S2], per_segment=True)
    assert counted(spark, plan, ("CRMID", "ECID", "Email")) == ExportedCounts(
        3, {"CRMID": 1, "ECID": 3, "Email": 2}, {"b1": 2, "b2": 2}, {("ups", "s1"): 2, ("ups", "s2"): 2})


def test_a_namespace_the_probe_did_not_see_gives_no_counts(spark):
    plan = make_plan(EMPTY_SCHEMA, segments=[S1, S2], per_segment=True)
    assert counted(spark, plan, ("ECID", "Email")) is None


def test_an_observation_whose_query_never_ran_is_none_without_waiting(spark):
    observation = Observation("never-ran")
    spark.range(3).observe(observation, F.count(F.lit(1)).alias("n"))
    assert observed(observation) is None
