"""The probe of the first fragments: the share that qualifies and the namespaces seen."""

from __future__ import annotations

import dataclasses

import pytest

from jobs.engine import FragmentProbe, candidate_filter, is_narrow, keyed_fragments, merge, probe, probe_fragments
from jobs.planner import ProfileSource, SegmentSpec

from .helpers import FRAGMENT, ids, make_plan, member, schema_of, ts

pytestmark = pytest.mark.spark

S1 = SegmentSpec("ups", "s1", ("realized",), "b1")


def fragments(spark, plan, rows):
    df = spark.createDataFrame([(key_map, ts(1), memberships, None, None) for key_map, memberships in rows],
                               FRAGMENT)
    return keyed_fragments(df, ProfileSource("a", "unused", 0), plan)


def test_the_probe_measures_the_qualifying_share_and_the_namespaces(spark):
    plan = make_plan(schema_of(spark), segments=[S1])
    rows = [
        (ids("A", Email="a@x.org"), {"ups": {"s1": member("realized", ts(1))}}),
        (ids("B", CRMID="b"), {"ups": {"s1": member("exited", ts(1))}}),
        (ids("C"), None),
        (ids("D"), {"ups": {"s2": member("realized", ts(1))}}),
    ]
    assert probe_fragments(fragments(spark, plan, rows), plan) == FragmentProbe(0.25, ("CRMID", "ECID", "Email"))


def test_the_probe_reads_only_the_first_fragments(spark, monkeypatch):
    monkeypatch.setattr(probe, "PROBE_FRAGMENTS", 1)
    plan = make_plan(schema_of(spark), segments=[S1])
    rows: list[tuple[dict, dict | None]] = [(ids("A"), {"ups": {"s1": member("realized", ts(1))}})]
    rows += [(ids(f"k{i}", Email="e"), None) for i in range(9)]
    df = fragments(spark, plan, rows).coalesce(1)  # one partition: "first" is the first row
    assert probe_fragments(df, plan) == FragmentProbe(1.0, ("ECID",))


def test_without_segments_or_fragments_there_is_no_share(spark):
    plan = make_plan(schema_of(spark))
    assert probe_fragments(fragments(spark, plan, [(ids("A"), None)]), plan) == FragmentProbe(None, ("ECID",))
    with_segments = make_plan(schema_of(spark), segments=[S1])
    assert probe_fragments(fragments(spark, with_segments, []), with_segments) == FragmentProbe(None, ())


def test_only_a_selective_job_merges_candidate_keys_only(spark):
    plan = make_plan(schema_of(spark), segments=[S1])
    assert is_narrow(0.05) and not is_narrow(0.5) and not is_narrow(None)
    assert candidate_filter(0.05, plan) is not None
    assert candidate_filter(0.5, plan) is None
    assert candidate_filter(None, plan) is None


def test_a_small_input_is_not_probed_and_watches_the_namespaces_earlier_exports_counted(spark, monkeypatch):
    monkeypatch.setattr(probe, "_seen_namespaces", {})
    plan = dataclasses.replace(make_plan(schema_of(spark), segments=[S1]), fragments=merge.SMALL_INPUT)
    unreadable = spark.range(1).selectExpr("raise_error('the probe read the fragments') AS never")
    assert probe_fragments(unreadable, plan) == FragmentProbe(None, ())
    probe.remember_namespaces(plan, ["Email"])
    probe.remember_namespaces(plan, ["ECID"])
    assert probe_fragments(unreadable, plan) == FragmentProbe(None, ("ECID", "Email"))
    other = dataclasses.replace(plan, sources=(ProfileSource("b", "elsewhere", 0),))
    assert probe_fragments(unreadable, other) == FragmentProbe(None, ())
    larger = dataclasses.replace(plan, fragments=merge.SMALL_INPUT + 1)
    with pytest.raises(Exception, match="the probe read the fragments"):
        probe_fragments(unreadable, larger)
    # An incremental job's changed keys' fragments are read as a small input, however large the lake.
    incremental = dataclasses.replace(larger, from_ingest=ts(1))
    assert probe_fragments(unreadable, incremental) == FragmentProbe(None, ("ECID", "Email"))


def test_a_small_input_asks_the_caller_for_namespaces_once_per_process_and_datasets(spark, monkeypatch):
    monkeypatch.setattr(probe, "_seen_namespaces", {})
    plan = dataclasses.replace(make_plan(schema_of(spark)), fragments=10)
    unreadable = spark.range(1).selectExpr("raise_error('the probe read the fragments') AS never")
    asked: list[str] = []

    def known() -> list[str]:
        asked.append("once")
        return ["Email", "ECID"]

    assert probe_fragments(unreadable, plan, known) == FragmentProbe(None, ("ECID", "Email"))
    assert probe_fragments(unreadable, plan, known) == FragmentProbe(None, ("ECID", "Email"))
    assert asked == ["once"]
    larger = dataclasses.replace(plan, fragments=None)  # unknown size: probed, the caller not asked
    assert probe_fragments(fragments(spark, larger, [(ids("A"), None)]), larger, known).namespaces == ("ECID",)
    assert asked == ["once"]
