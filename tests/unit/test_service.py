"""The NEW job record built by service.new_record, and its wire form."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jobs.control.jobs import new_batch_id, new_record
from jobs.spec.config import load_config
from jobs.spec.jobs import JobError, JobRecord, JobStatus, Metrics, SegmentStatus, TimeSpan, parse_definition

REPO = Path(__file__).resolve().parents[2]
CONFIG = load_config(REPO / "conf" / "export.toml")
DATASET = "5b7c86968f7b6501e21ba9df"
SCHEMA = "_xdm.context.profile"
HEX32 = re.compile(r"[0-9a-f]{32}")
CREATED = 1538615973895

# The seed's POST body (000_f2b43f2e193f6e98.txt), as data.
SEED_BODY = {
    "fields": "identities.id,personalEmail.address",
    "mergePolicy": {"id": "timestampOrdered-none-mp", "version": 1},
    "filter": {
        "segments": [
            {"segmentId": "52c26d0d-45f2-47a2-ab30-ed06abc981ff", "segmentNs": "ups", "status": ["realized"]}
        ],
        "segmentQualificationTime": {"startTime": "2018-01-01T00:00:00Z", "endTime": "2018-02-01T00:00:00Z"},
        "fromIngestTimestamp": "2018-01-01T00:00:00Z",
        "emptyProfiles": True,
    },
    "additionalFields": {
        "eventList": {
            "fields": "string",
            "filter": {"fromIngestTimestamp": "2018-01-01T00:00:00Z", "toIngestTimestamp": "2020-01-01T00:00:00Z"},
        }
    },
    "destination": {"datasetId": DATASET, "segmentPerBatch": False},
    "schema": {"name": SCHEMA},
    "evaluationInfo": {"segmentation": True},
}

PER_SEGMENT_BODY = {
    "filter": {
        "segments": [
            {"segmentId": "segment1", "segmentNs": "ups", "status": ["realized"]},
            {"segmentId": "segment2", "segmentNs": "AdCloud", "status": "exited"},
            {"segmentId": "segment3"},
        ]
    },
    "destination": {"datasetId": DATASET, "segmentPerBatch": True},
    "schema": {"name": SCHEMA},
}

MINIMAL_BODY = {"destination": {"datasetId": DATASET}, "schema": {"name": SCHEMA}}


def record_for(body: dict, job_id: int = 100) -> JobRecord:
    return new_record(
        parse_definition(body), CONFIG, job_id, "demo@Org", "prod",
        "d995479c-8a08-4240-903b-af469c67be1f", CREATED,
    )


# ---------------------------------------------------------------- combined mode


def test_new_record_is_new_batch_job_with_identity():
    record = record_for(SEED_BODY)

    assert record.id == 100
    assert record.job_type == "BATCH"
    assert record.status is JobStatus.NEW
    assert record.ims_org_id == "demo@Org"
    assert record.sandbox_name == "prod"
    assert record.request_id == "d995479c-8a08-4240-903b-af469c67be1f"
    assert record.creation_time == record.update_time == CREATED
    assert record.profile_instance_id == "ups"
    assert record.errors == []
    assert record.metrics == Metrics(total_time=TimeSpan(start_time_in_ms=CREATED))
    assert record.compute_gateway_job_id.export_job == ""


def test_combined_mode_has_one_32_hex_batch_id():
    record = record_for(SEED_BODY)

    assert record.export_destination.dataset_id == DATASET
    assert record.export_destination.segment_per_batch is False
    assert record.export_destination.batch_id is not None
    assert HEX32.fullmatch(record.export_destination.batch_id)
    assert record.export_destination.batches is None
    assert record.export_destination.batch_ids() == [record.export_destination.batch_id]


def test_each_record_gets_its_own_batch_id():
    ids = {record_for(MINIMAL_BODY).export_destination.batch_id for _ in range(20)}

    assert len(ids) == 20


def test_new_batch_id_is_32_lowercase_hex():
    assert all(HEX32.fullmatch(new_batch_id()) for _ in range(50))


def test_combined_mode_keeps_definition_parts():
    record = record_for(SEED_BODY)

    assert record.fields == "identities.id,personalEmail.address"
    assert record.to_dict()["schema"] == {"name": SCHEMA}
    assert record.to_dict()["mergePolicy"] == {"id": "timestampOrdered-none-mp", "version": 1}
    assert record.to_dict()["evaluationInfo"] == {"segmentation": True}
    assert record.to_dict()["filter"] == SEED_BODY["filter"]
    assert record.to_dict()["additionalFields"] == SEED_BODY["additionalFields"]


def test_defaults_filled_in_filter():
    record = record_for(
        {**MINIMAL_BODY, "filter": {"segments": [{"segmentId": "s1"}]}}
    )

    assert record.to_dict()["filter"] == {
        "segments": [{"segmentId": "s1", "segmentNs": "ups", "status": ["realized", "existing"]}],
        "emptyProfiles": False,
    }
    assert record.to_dict()["evaluationInfo"] == {"segmentation": False}


def test_minimal_definition_record():
    record = record_for(MINIMAL_BODY)

    assert record.fields is None
    assert record.to_dict()["filter"] == {"emptyProfiles": False}
    assert record.additional_fields is None
    assert record.to_dict()["evaluationInfo"] == {"segmentation": False}


def test_default_merge_policy_filled_in_when_none_given():
    record = record_for(MINIMAL_BODY)

    default = CONFIG.default_policy()
    assert record.to_dict()["mergePolicy"] == {"id": default.id, "version": default.version}
    assert record.to_dict()["mergePolicy"] == {"id": "timestampOrdered-none-mp", "version": 1}


def test_given_merge_policy_kept():
    record = record_for({**MINIMAL_BODY, "mergePolicy": {"id": "loyalty-first-mp", "version": 1}})

    assert record.to_dict()["mergePolicy"] == {"id": "loyalty-first-mp", "version": 1}


def test_timestamps_stored_in_utc_rfc3339():
    record = record_for({**MINIMAL_BODY, "filter": {
        "fromIngestTimestamp": "2018-01-01T02:00:00.25+02:00",
        "segmentQualificationTime": {"endTime": "2018-01-31T19:00:00-05:00"},
    }})

    assert record.to_dict()["filter"]["fromIngestTimestamp"] == "2018-01-01T00:00:00.250000Z"
    assert record.to_dict()["filter"]["segmentQualificationTime"] == {"endTime": "2018-02-01T00:00:00Z"}


# ---------------------------------------------------------------- per-segment mode


def test_per_segment_mode_has_one_batch_per_segment():
    record = record_for(PER_SEGMENT_BODY)

    destination = record.export_destination
    assert destination.segment_per_batch is True
    assert destination.batch_id is None
    assert destination.batches is not None
    assert [(b.segment_id, b.segment_ns, b.status) for b in destination.batches] == [
        ("segment1", "ups", [SegmentStatus.REALIZED]),
        ("segment2", "AdCloud", [SegmentStatus.EXITED]),
        ("segment3", "ups", [SegmentStatus.REALIZED, SegmentStatus.EXISTING]),
    ]


def test_per_segment_batch_ids_are_distinct_32_hex():
    record = record_for(PER_SEGMENT_BODY)

    ids = record.export_destination.batch_ids()
    assert len(ids) == 3
    assert len(set(ids)) == 3
    assert all(HEX32.fullmatch(i) for i in ids)


def test_per_segment_wire_form_lists_batches_with_status_lists():
    destination = record_for(PER_SEGMENT_BODY).to_dict()["destination"]

    assert set(destination) == {"datasetId", "segmentPerBatch", "batches"}
    assert destination["segmentPerBatch"] is True
    assert [{k: v for k, v in b.items() if k != "batchId"} for b in destination["batches"]] == [
        {"segmentId": "segment1", "segmentNs": "ups", "status": ["realized"]},
        {"segmentId": "segment2", "segmentNs": "AdCloud", "status": ["exited"]},
        {"segmentId": "segment3", "segmentNs": "ups", "status": ["realized", "existing"]},
    ]
    assert all(set(b) == {"segmentId", "segmentNs", "status", "batchId"} for b in destination["batches"])


# ---------------------------------------------------------------- wire form


def test_to_dict_uses_seed_camel_case_keys():
    data = record_for(SEED_BODY).to_dict()

    assert set(data) == {
        "id", "jobType", "imsOrgId", "sandboxName", "status", "fields", "schema", "filter",
        "additionalFields", "mergePolicy", "evaluationInfo", "destination", "profileInstanceId",
        "errors", "metrics", "computeGatewayJobId", "creationTime", "updateTime", "requestId",
    }
    assert data["jobType"] == "BATCH"
    assert data["status"] == "NEW"
    assert data["imsOrgId"] == "demo@Org"
    assert data["sandboxName"] == "prod"
    assert data["profileInstanceId"] == "ups"
    assert data["computeGatewayJobId"] == {"exportJob": ""}
    assert data["creationTime"] == CREATED
    assert data["updateTime"] == CREATED
    assert data["requestId"] == "d995479c-8a08-4240-903b-af469c67be1f"
    assert data["schema"] == {"name": SCHEMA}
    assert data["mergePolicy"] == {"id": "timestampOrdered-none-mp", "version": 1}
    assert data["metrics"] == {"totalTime": {"startTimeInMs": CREATED}}
    assert data["errors"] == []
    assert set(data["destination"]) == {"datasetId", "segmentPerBatch", "batchId"}


def test_to_dict_matches_seed_response_parts():
    data = record_for(SEED_BODY).to_dict()

    assert data["filter"] == SEED_BODY["filter"]
    assert data["additionalFields"] == SEED_BODY["additionalFields"]
    assert data["fields"] == SEED_BODY["fields"]
    assert data["evaluationInfo"] == SEED_BODY["evaluationInfo"]


def test_to_dict_metrics_and_errors_use_camel_case():
    record = record_for(MINIMAL_BODY).updated(
        status=JobStatus.FAILED,
        metrics=Metrics(
            total_time=TimeSpan(start_time_in_ms=1000).finish(3500),
            total_exported_profile_counter=7,
            exported_profile_by_namespace_counter={"ECID": 7},
            rejected_record_counter=0,
        ),
        errors=[JobError(code="EXPORT_FAILED", msg="boom", call_stack="ValueError: boom")],
    )

    data = record.to_dict()

    assert data["metrics"] == {
        "totalTime": {"startTimeInMs": 1000, "endTimeInMs": 3500, "totalTimeInMs": 2500},
        "totalExportedProfileCounter": 7,
        "exportedProfileByNamespaceCounter": {"ECID": 7},
        "rejectedRecordCounter": 0,
    }
    assert data["errors"] == [{"code": "EXPORT_FAILED", "msg": "boom", "callStack": "ValueError: boom"}]


def test_to_json_is_to_dict():
    record = record_for(SEED_BODY)

    assert json.loads(record.to_json()) == record.to_dict()


def test_record_json_round_trips():
    record = record_for(PER_SEGMENT_BODY)

    assert JobRecord.model_validate_json(record.to_json()) == record
    assert JobRecord.model_validate(record.to_dict()) == record


# ---------------------------------------------------------------- definition round trip


@pytest.mark.parametrize(
    "body",
    [
        SEED_BODY,
        {**PER_SEGMENT_BODY, "mergePolicy": {"id": "timestampOrdered-none-mp", "version": 1}},
        {**MINIMAL_BODY, "mergePolicy": {"id": "loyalty-first-mp", "version": 1}},
    ],
    ids=["seed", "per-segment", "minimal-with-policy"],
)
def test_record_definition_round_trips(body):
    definition = parse_definition(body)
    record = new_record(definition, CONFIG, 1, "demo@Org", "prod", "r", CREATED)

    assert record.definition() == definition
    assert JobRecord.model_validate_json(record.to_json()).definition() == definition


def test_record_definition_has_default_policy_filled_in():
    definition = parse_definition(MINIMAL_BODY)
    record = new_record(definition, CONFIG, 1, "demo@Org", "prod", "r", CREATED)

    restored = record.definition()

    assert restored.merge_policy is not None
    assert restored.merge_policy.id == "timestampOrdered-none-mp"
    assert restored.merge_policy.version == 1
    assert restored.updated(merge_policy=None) == definition


def test_record_definition_round_trips_offset_timestamps():
    definition = parse_definition({**MINIMAL_BODY, "mergePolicy": {"id": "timestampOrdered-none-mp", "version": 1},
                                   "filter": {"fromIngestTimestamp": "2018-01-01T02:00:00.123456789+02:00"}})
    record = new_record(definition, CONFIG, 1, "demo@Org", "prod", "r", CREATED)

    assert JobRecord.model_validate_json(record.to_json()).definition() == definition
