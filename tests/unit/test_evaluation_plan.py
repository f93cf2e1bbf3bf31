"""Evaluating jobs before Spark: what creation rejects, and the plan a run gets (delta-rs, no Spark)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from jobs.control.jobs import JobStore, create_job
from jobs.planner.build import build_plan, dependency_order
from jobs.spec.config import load_config
from jobs.spec.errors import LakeError, RequestRejected
from jobs.spec.jobs import JobStatus
from sample_lake import empty_table, sample_config
from tests.unit.conftest import define_segment

ORG, SANDBOX = "demo@Org", "prod"


@pytest.fixture
def config(segment_lake):
    return segment_lake


def job(*segment_ids: str, **changes) -> dict:
    return {"filter": {"segments": [{"segmentId": s} for s in segment_ids]}, "evaluationInfo": {"segmentation": True},
            "destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}, **changes}


def rejected(config, body) -> dict[str, str]:
    store = JobStore(config.job_table_path)
    with pytest.raises(RequestRejected) as caught:
        create_job(store, config, body, ORG, SANDBOX)
    assert store.ids_with_status(JobStatus.NEW) == []  # nothing was stored
    return {p.path: p.message for p in caught.value.problems}


def test_an_unknown_segment_is_rejected_by_its_path(config):
    known = define_segment(config, 'person.name = "Ada"')
    problems = rejected(config, job(known, "nope"))
    assert list(problems) == ["filter.segments[1].segmentId"] and "'nope'" in problems["filter.segments[1].segmentId"]


def test_segments_of_different_policies_need_a_job_policy(config):
    a = define_segment(config, 'person.name = "Ada"')
    b = define_segment(config, "points > 1", policy="dataSetPrecedence-mp")
    problems = rejected(config, job(a, b))
    assert list(problems) == ["mergePolicy"] and "different merge policies" in problems["mergePolicy"]


def test_a_definition_that_no_longer_fits_the_lake_is_rejected_by_its_segment(config, tmp_path):
    segment = define_segment(config, "points > 1")
    empty_table(tmp_path / "profiles/profiles_0", person=pa.struct([("name", pa.string())]))  # points dropped
    problems = rejected(config, job(segment))
    assert list(problems) == ["filter.segments[0].segmentId"]
    assert "does not fit merge policy 'timestampOrdered-none-mp'" in problems["filter.segments[0].segmentId"]
    assert "'points' at position 1" in problems["filter.segments[0].segmentId"]


def test_evaluation_needs_a_segmentation_dataset(config, tmp_path):
    segment = define_segment(config, 'person.name = "Ada"')
    plain = tmp_path / "plain.toml"
    plain.write_text(sample_config(tmp_path, job_table=str(tmp_path / "other-jobs")))
    problems = rejected(load_config(plain), job(segment))
    assert "segmentationDataset" in problems["evaluationInfo.segmentation"]


def test_a_job_without_a_policy_takes_its_segments_and_keeps_their_definitions(config):
    segment = define_segment(config, "loyalty.tier = \"gold\"", policy="dataSetPrecedence-mp")
    record = create_job(JobStore(config.job_table_path), config, job(segment), ORG, SANDBOX)
    assert record.to_dict()["mergePolicy"] == {"id": "dataSetPrecedence-mp", "version": 1}
    assert record.segment_definitions is not None
    assert [(d.id, d.expression) for d in record.segment_definitions] == [(segment, 'loyalty.tier = "gold"')]


def test_the_run_plan_merges_what_the_expressions_read(config):
    gold = define_segment(config, 'loyalty.tier = "gold"')
    other = define_segment(config, "points > 1")
    buyer = define_segment(config, f'xEvent[eventType = "buy"].count() > 1 and inSegment("{gold}") '
                           f'and not(inSegment("{other}"))')
    record = create_job(JobStore(config.job_table_path), config, job(buyer, gold, fields="person.name"), ORG,
                        SANDBOX)
    now = datetime(2024, 6, 1, tzinfo=UTC)
    record = record.evaluated_at(int(now.timestamp() * 1000))
    plan = build_plan(record, config, "d")
    assert plan.evaluation is not None and plan.evaluation.now == now and plan.as_of == now
    assert [s.segment_id for s in plan.evaluation.segments] == [gold, buyer]  # references first
    assert [leaf.path for leaf in plan.leaves] == [("person", "name"), ("loyalty", "tier")]
    assert plan.referenced_segments == (("ups", gold), ("ups", other))
    assert plan.merged_segment_refs == [("ups", buyer), ("ups", gold), ("ups", other)]
    assert plan.events is not None and plan.events.before == now and len(plan.events.conditions) == 1
    assert plan.evaluation.writeback_path.endswith("memberships")
    assert [s.optional for s in plan.sources] == [False, False, True]


def test_dependency_order_puts_references_first_and_finds_cycles():
    assert dependency_order({"c": ("a", "x"), "a": (), "b": ("c",)}) == ["a", "c", "b"]
    with pytest.raises(LakeError, match="cycle"):
        dependency_order({"a": ("b",), "b": ("a",)})
