"""Creation-time checks against the config and the lake schemas (deltalake, no Spark)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from jobs.planner import ProfileSource
from jobs.planner.build import check_job
from jobs.planner.lake import fragment_count, profile_sources
from jobs.spec.config import load_config
from jobs.spec.errors import LakeError, RequestRejected
from jobs.spec.jobs import parse_definition
from sample_lake import IDENTITY_MAP, UTC_TIME, empty_table, sample_config


def body(**changes):
    base = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
    return parse_definition({**base, **changes})


def problems(definition, config):
    with pytest.raises(RequestRejected) as caught:
        check_job(definition, config)
    return {p.path: p.message for p in caught.value.problems}


def test_a_valid_definition_passes(config):
    check_job(body(fields="person.name, personalEmail.address",
                          additionalFields={"eventList": {"fields": "_id, web.url"}}), config)


def test_every_problem_is_reported_with_its_path(config):
    found = problems(body(
        fields="person.name, person.age",
        mergePolicy={"id": "nope", "version": 1},
        destination={"datasetId": "elsewhere"},
        additionalFields={"eventList": {"fields": "web.missing"}},
        evaluationInfo={"segmentation": True},
    ), config)
    assert set(found) == {"fields", "mergePolicy", "destination.datasetId",
                          "additionalFields.eventList.fields", "evaluationInfo.segmentation"}
    assert "'person.age'" in found["fields"]
    assert "'web.missing'" in found["additionalFields.eventList.fields"]
    assert "timestampOrdered-none-mp v1" in found["mergePolicy"]
    # Two problems there (no segmentationDataset, no segments to evaluate): the last one listed.
    assert "filter.segments" in found["evaluationInfo.segmentation"]


def test_schema_name_must_match_the_destination(config):
    found = problems(body(schema={"name": "_xdm.other"}), config)
    assert list(found) == ["schema.name"] and "_xdm.context.profile" in found["schema.name"]


def test_a_field_only_in_a_dataset_outside_the_precedence_order_is_unknown(config, tmp_path):
    conf = tmp_path / "narrow.toml"
    conf.write_text(sample_config(tmp_path).replace('order = ["profiles_1", "profiles_0"]', 'order = ["profiles_1"]'))
    found = problems(body(fields="person.name", mergePolicy={"id": "dataSetPrecedence-mp", "version": 1}),
                     load_config(conf))
    assert list(found) == ["fields"]


def test_event_list_needs_event_datasets(config, tmp_path):
    conf = tmp_path / "no-events.toml"
    conf.write_text(sample_config(tmp_path, event_datasets=0))
    found = problems(body(additionalFields={"eventList": {"fields": "_id"}}), load_config(conf))
    assert list(found) == ["additionalFields.eventList"]


def test_a_missing_table_or_conflicting_types_are_lake_errors(config, tmp_path):
    empty_table(tmp_path / "profiles/profiles_1", person=pa.string())
    with pytest.raises(LakeError, match=r"person.*'profiles_0' and 'profiles_1'"):
        check_job(body(), config)
    conf = tmp_path / "missing.toml"
    conf.write_text(sample_config(tmp_path, profile_datasets=3))
    with pytest.raises(LakeError, match=r"profiles_2.*no Delta table"):
        check_job(body(), load_config(conf))


def test_the_fragment_count_comes_from_the_delta_logs(config, tmp_path):
    sources = profile_sources(config.default_policy(), config)
    assert fragment_count(sources) == 0
    rows = pa.table({"identityMap": pa.array([None, None], IDENTITY_MAP),
                     "_ingestTime": pa.array([None, None], UTC_TIME)})
    write_deltalake(str(tmp_path / "profiles/profiles_1"), rows, mode="append", schema_mode="merge")
    write_deltalake(str(tmp_path / "profiles/profiles_1"), rows, mode="append", schema_mode="merge")
    assert fragment_count(sources) == 4
    missing = ProfileSource("later", str(tmp_path / "profiles/not-yet"), 0, optional=True)
    assert fragment_count([*sources, missing]) == 4
