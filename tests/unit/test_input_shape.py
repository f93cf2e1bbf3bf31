"""The input contract, checked when a job is created: each profile and event dataset has the system
columns with the right types, or the job is refused naming the dataset, the column and what was expected."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from jobs.control import JobStore, create_job
from jobs.spec import LakeError, input_shape_problems
from sample_lake import IDENTITY_MAP, UTC_TIME

MEMBERSHIPS = pa.map_(pa.string(), pa.map_(pa.string(), pa.struct([("status", pa.string()),
                                                                    ("lastQualificationTime", UTC_TIME)])))


def schema_of(**columns: pa.DataType) -> dict:
    """The Delta JSON schema deltalake gives for these columns."""
    from deltalake import Schema

    return json.loads(Schema.from_arrow(pa.schema(list(columns.items()))).to_json())


def test_a_profile_table_of_the_expected_shape_has_no_problems():
    assert input_shape_problems("profile", schema_of(identityMap=IDENTITY_MAP, _ingestTime=UTC_TIME,
                                                     segmentMembership=MEMBERSHIPS, name=pa.string())) == []
    # segmentMembership is optional: a dataset of attributes only
    assert input_shape_problems("profile", schema_of(identityMap=IDENTITY_MAP, _ingestTime=UTC_TIME)) == []


def test_each_wrong_or_missing_system_column_is_named_with_what_was_expected():
    problems = input_shape_problems("profile", schema_of(
        identityMap=pa.map_(pa.string(), pa.string()), segmentMembership=pa.string()))
    assert problems == [
        "column identityMap is map<string,string>, expected map<string, array<struct<id: string, "
        "primary: boolean, ...>>>",
        "has no column _ingestTime (expected timestamp)",
        "column segmentMembership is string, expected map<string, map<string, struct<status: string, "
        "lastQualificationTime: timestamp, ...>>> (namespace -> segment id -> membership)",
    ]


def test_an_event_table_needs_identities_and_ingest_time_and_a_timestamp_of_its_type():
    assert input_shape_problems("event", schema_of(identityMap=IDENTITY_MAP, _ingestTime=UTC_TIME,
                                                   timestamp=UTC_TIME, _id=pa.string())) == []
    assert input_shape_problems("event", schema_of(identityMap=IDENTITY_MAP, _ingestTime=pa.string(),
                                                   timestamp=pa.int64())) == [
        "column _ingestTime is string, expected timestamp", "column timestamp is long, expected timestamp"]


def test_a_job_over_a_dataset_of_the_wrong_shape_is_refused_at_creation(config):
    path = config.resolve(config.profile_datasets[1].path)
    write_deltalake(path, pa.table({"customerId": pa.array([], pa.string()), "email": pa.array([], pa.string())}),
                    mode="overwrite", schema_mode="overwrite")
    body = {"destination": {"datasetId": config.destination_datasets[0].id},
            "schema": {"name": config.destination_datasets[0].schema_name}}
    store = JobStore(config.job_table_path)
    with pytest.raises(LakeError) as refused:
        create_job(store, config, body, config.default_org, config.default_sandbox)
    assert str(refused.value) == (
        f"profile dataset {config.profile_datasets[1].id!r} does not have the system columns a profile table needs: "
        "it has no column identityMap (expected map<string, array<struct<id: string, primary: boolean, ...>>>); "
        "it has no column _ingestTime (expected timestamp) (docs/reference/your-lake.md#the-tables)")
    assert store.list(config.default_org, config.default_sandbox) == []
