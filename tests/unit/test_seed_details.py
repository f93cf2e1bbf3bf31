"""The seeds' details the product reads as they say (docs/reference/seeds.md): an omitted mergePolicy,
`"fields": ""`, `dataSetId`, the create response's start time. delta-rs only, no Spark."""

from __future__ import annotations

import pytest

from jobs.control.jobs import JobStore, create_job
from jobs.planner.build import build_plan
from jobs.spec.errors import RequestRejected
from jobs.spec.jobs import parse_definition
from tests.unit.conftest import define_segment

ORG, SANDBOX = "demo@Org", "prod"


@pytest.fixture
def config(segment_lake):
    return segment_lake


def job(*segment_ids: str, **changes) -> dict:
    segments = {"filter": {"segments": [{"segmentId": s} for s in segment_ids]}} if segment_ids else {}
    return {**segments, "destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"},
            **changes}


def create(config, body):
    return create_job(JobStore(config.job_table_path), config, body, ORG, SANDBOX)


def test_an_omitted_merge_policy_is_the_segments_one(config):
    gold = define_segment(config, 'loyalty.tier = "gold"', policy="dataSetPrecedence-mp")
    silver = define_segment(config, 'loyalty.tier = "silver"', policy="dataSetPrecedence-mp")
    other = define_segment(config, "points > 1")

    assert create(config, job(gold, silver)).merge_policy.id == "dataSetPrecedence-mp"
    # A segment known only by its memberships carries no policy; a named policy wins.
    assert create(config, job(gold, "known-from-memberships")).merge_policy.id == "dataSetPrecedence-mp"
    named = {"id": "timestampOrdered-none-mp", "version": 1}
    assert create(config, job(gold, other, mergePolicy=named)).merge_policy.id == "timestampOrdered-none-mp"
    assert create(config, job("known-from-memberships")).merge_policy.id == config.default_policy().id
    assert create(config, job()).merge_policy.id == config.default_policy().id

    with pytest.raises(RequestRejected) as caught:
        create(config, job(gold, other))
    [problem] = caught.value.problems
    assert problem.path == "mergePolicy"
    assert "dataSetPrecedence-mp, timestampOrdered-none-mp" in problem.message


def test_empty_fields_export_every_field(config):
    empty = create(config, job(fields="", additionalFields={"eventList": {"fields": " "}}))
    omitted = create(config, job(additionalFields={"eventList": {}}))

    assert "fields" not in empty.to_dict()
    assert empty.additional_fields is not None and empty.additional_fields.event_list is not None
    assert empty.additional_fields.event_list.fields is None
    every, plain = build_plan(empty, config, "d"), build_plan(omitted, config, "d")
    assert every.projection == plain.projection
    assert every.projection is not None and {n.name for n in every.projection} >= {"person", "points", "loyalty"}
    assert every.events is not None and plain.events is not None
    assert every.events.projection == plain.events.projection


def test_data_set_id_is_dataset_id():
    # The seeds' per-segment record: "dataSetId" : "{DATASET_ID}", "segmentPerBatch": true.
    body = {"destination": {"dataSetId": "{DATASET_ID}", "segmentPerBatch": True},
            "filter": {"segments": [{"segmentId": "segment1"}]}, "schema": {"name": "_xdm.context.profile"}}
    assert parse_definition(body).destination.dataset_id == "{DATASET_ID}"
    same = {**body, "destination": {"dataSetId": "a", "datasetId": "a"}}
    assert parse_definition(same).destination.dataset_id == "a"

    with pytest.raises(RequestRejected) as caught:
        parse_definition({**body, "destination": {"dataSetId": "a", "datasetId": "b"}})
    [problem] = caught.value.problems
    assert problem.path == "destination" and "datasetId and dataSetId" in problem.message


def test_the_create_response_has_a_start_time(config):
    record = create(config, job()).to_dict()
    assert record["metrics"] == {"totalTime": {"startTimeInMs": record["creationTime"]}}
