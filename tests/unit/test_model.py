"""The job definition model: parsing, defaults and every kind of rejection."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from pydantic.alias_generators import to_camel

from jobs.spec.errors import RequestRejected, json_path
from jobs.spec.jobs import JobDefinition, SegmentStatus, parse_definition, parse_field_list
from jobs.spec.times import parse_rfc3339

# Verbatim from /work/shared/seeds/000_f2b43f2e193f6e98.txt, the body of `curl -X POST`.
SEED_POST_BODY = """
{
    "fields": "identities.id,personalEmail.address",
    "mergePolicy": {
        "id": "timestampOrdered-none-mp",
        "version": 1
    },
    "filter": {
        "segments": [
            {
                "segmentId": "52c26d0d-45f2-47a2-ab30-ed06abc981ff",
                "segmentNs": "ups",
                "status": [
                    "realized"
                ]
            }
        ],
        "segmentQualificationTime": {
            "startTime": "2018-01-01T00:00:00Z",
            "endTime": "2018-02-01T00:00:00Z"
        },
        "fromIngestTimestamp": "2018-01-01T00:00:00Z",
        "emptyProfiles": true
    },
    "additionalFields": {
        "eventList": {
            "fields": "string",
            "filter": {
                "fromIngestTimestamp": "2018-01-01T00:00:00Z",
                "toIngestTimestamp": "2020-01-01T00:00:00Z"
            }
        }
    },
    "destination":{
        "datasetId": "5b7c86968f7b6501e21ba9df",
        "segmentPerBatch": false
    },
    "schema":{
        "name": "_xdm.context.profile"
    },
    "evaluationInfo": {
        "segmentation": true
    }
}"""

MINIMAL = {
    "destination": {"datasetId": "5b7c86968f7b6501e21ba9df"},
    "schema": {"name": "_xdm.context.profile"},
}

UTC = UTC


def body(**parts) -> dict:
    """MINIMAL with top-level parts replaced or added."""
    result = copy.deepcopy(MINIMAL)
    result.update(parts)
    return result


def problems(request) -> list[tuple[str, str]]:
    with pytest.raises(RequestRejected) as caught:
        parse_definition(request)
    assert caught.value.problems, "RequestRejected must list at least one problem"
    return [(p.path, p.message) for p in caught.value.problems]


def only_problem(request) -> tuple[str, str]:
    found = problems(request)
    assert len(found) == 1, found
    return found[0]


def problem_paths(request) -> list[str]:
    return [path for path, _ in problems(request)]


# ---------------------------------------------------------------- the seed


def test_seed_post_body_parses():
    definition = parse_definition(SEED_POST_BODY)

    assert isinstance(definition, JobDefinition)
    assert definition.fields == "identities.id,personalEmail.address"
    assert definition.merge_policy is not None
    assert definition.merge_policy.id == "timestampOrdered-none-mp"
    assert definition.merge_policy.version == 1
    assert definition.filter.segments is not None
    [segment] = definition.filter.segments
    assert segment.segment_id == "52c26d0d-45f2-47a2-ab30-ed06abc981ff"
    assert segment.segment_ns == "ups"
    assert segment.status == [SegmentStatus.REALIZED]
    window = definition.filter.segment_qualification_time
    assert window is not None
    assert window.start_time == datetime(2018, 1, 1, tzinfo=UTC)
    assert window.end_time == datetime(2018, 2, 1, tzinfo=UTC)
    assert definition.filter.from_ingest_timestamp == datetime(2018, 1, 1, tzinfo=UTC)
    assert definition.filter.empty_profiles is True
    assert definition.destination.dataset_id == "5b7c86968f7b6501e21ba9df"
    assert definition.destination.segment_per_batch is False
    assert definition.schema_.name == "_xdm.context.profile"


def test_seed_post_body_keeps_options_the_planner_rejects():
    # The model parses them; plan.check_definition is what refuses them.
    definition = parse_definition(SEED_POST_BODY)

    assert definition.evaluation_info.segmentation is True
    assert definition.additional_fields is not None
    event_list = definition.additional_fields.event_list
    assert event_list is not None
    assert event_list.fields == "string"
    assert event_list.filter is not None
    assert event_list.filter.from_ingest_timestamp == datetime(2018, 1, 1, tzinfo=UTC)
    assert event_list.filter.to_ingest_timestamp == datetime(2020, 1, 1, tzinfo=UTC)


def test_seed_post_body_parses_from_bytes_and_dict():
    from_text = parse_definition(SEED_POST_BODY)

    assert parse_definition(SEED_POST_BODY.encode()) == from_text
    assert parse_definition(json.loads(SEED_POST_BODY)) == from_text


# ---------------------------------------------------------------- defaults


def test_minimal_definition_gets_defaults():
    definition = parse_definition(MINIMAL)

    assert definition.fields is None
    assert definition.merge_policy is None
    assert definition.additional_fields is None
    assert definition.filter.segments is None
    assert definition.filter.segment_qualification_time is None
    assert definition.filter.from_ingest_timestamp is None
    assert definition.filter.empty_profiles is False
    assert definition.destination.segment_per_batch is False
    assert definition.evaluation_info.segmentation is False


def test_segment_defaults_to_ups_namespace_and_realized_existing():
    definition = parse_definition(body(filter={"segments": [{"segmentId": "s1"}]}))

    assert definition.filter.segments is not None
    [segment] = definition.filter.segments
    assert segment.segment_ns == "ups"
    assert segment.status == [SegmentStatus.REALIZED, SegmentStatus.EXISTING]


def test_status_given_as_single_string_becomes_a_list():
    definition = parse_definition(
        body(filter={"segments": [{"segmentId": "s1", "segmentNs": "AdCloud", "status": "exited"}]})
    )

    assert definition.filter.segments is not None
    [segment] = definition.filter.segments
    assert segment.status == [SegmentStatus.EXITED]
    assert segment.segment_ns == "AdCloud"


def test_all_three_statuses_accepted():
    definition = parse_definition(
        body(filter={"segments": [{"segmentId": "s1", "status": ["realized", "existing", "exited"]}]})
    )

    assert definition.filter.segments is not None
    assert [s.value for s in definition.filter.segments[0].status] == [
        "realized", "existing", "exited"
    ]


def test_same_segment_id_in_two_namespaces_is_allowed():
    definition = parse_definition(body(filter={"segments": [
        {"segmentId": "s1", "segmentNs": "ups"},
        {"segmentId": "s1", "segmentNs": "AdCloud"},
    ]}))

    assert definition.filter.segments is not None
    assert len(definition.filter.segments) == 2


def test_segment_per_batch_with_segments_is_accepted():
    definition = parse_definition(body(
        destination={"datasetId": "d", "segmentPerBatch": True},
        filter={"segments": [{"segmentId": "s1"}, {"segmentId": "s2"}]},
    ))

    assert definition.destination.segment_per_batch is True


def test_fields_with_spaces_around_commas_accepted():
    definition = parse_definition(body(fields=" identities.id , personalEmail.address,person.name.firstName "))

    assert definition.fields is not None
    assert parse_field_list(definition.fields) == [
        ("identities", "id"), ("personalEmail", "address"), ("person", "name", "firstName")
    ]


# ---------------------------------------------------------------- timestamps


def window(start: str | None = None, end: str | None = None) -> dict:
    times = {}
    if start is not None:
        times["startTime"] = start
    if end is not None:
        times["endTime"] = end
    return body(filter={"segmentQualificationTime": times})


def test_timestamp_with_offset_normalises_to_utc():
    definition = parse_definition(body(filter={"fromIngestTimestamp": "2018-01-01T02:00:00+02:00"}))

    value = definition.filter.from_ingest_timestamp
    assert value == datetime(2018, 1, 1, 0, 0, 0, tzinfo=UTC)
    offset = value.utcoffset()
    assert offset is not None
    assert offset.total_seconds() == 0


def test_timestamp_with_negative_offset_crosses_midnight():
    definition = parse_definition(body(filter={"fromIngestTimestamp": "2017-12-31T22:30:00-01:30"}))

    assert definition.filter.from_ingest_timestamp == datetime(2018, 1, 1, 0, 0, tzinfo=UTC)


def test_timestamp_fractional_seconds_kept():
    definition = parse_definition(body(filter={"fromIngestTimestamp": "2018-01-01T00:00:00.123Z"}))

    assert definition.filter.from_ingest_timestamp == datetime(2018, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)


def test_timestamp_more_than_six_fraction_digits_accepted_and_cut_to_microseconds():
    definition = parse_definition(body(filter={"fromIngestTimestamp": "2018-01-01T00:00:00.123456789Z"}))

    assert definition.filter.from_ingest_timestamp == datetime(2018, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)


def test_timestamp_lowercase_t_and_z_accepted():
    assert parse_rfc3339("2018-01-01t00:00:00z") == datetime(2018, 1, 1, tzinfo=UTC)


def test_start_equal_to_end_is_accepted():
    definition = parse_definition(window("2018-01-01T00:00:00Z", "2018-01-01T01:00:00+01:00"))

    times = definition.filter.segment_qualification_time
    assert times is not None
    assert times.start_time == times.end_time


def test_window_with_only_one_end_is_accepted():
    from_start = parse_definition(window(start="2018-01-01T00:00:00Z")).filter.segment_qualification_time
    to_end = parse_definition(window(end="2018-01-01T00:00:00Z")).filter.segment_qualification_time
    assert from_start is not None
    assert from_start.end_time is None
    assert to_end is not None
    assert to_end.start_time is None


def test_start_after_end_is_compared_in_utc():
    # 01:00+02:00 is 23:00Z the day before, so it is before 00:00Z: accepted.
    parse_definition(window("2018-01-01T01:00:00+02:00", "2018-01-01T00:00:00Z"))


# ---------------------------------------------------------------- rejections: keys


def test_unknown_top_level_key_rejected():
    assert only_problem(body(foo=1)) == ("foo", "unknown key")


def test_unknown_nested_key_rejected_with_full_path():
    request = body(filter={"segments": [{"segmentId": "s1", "segmentNamespace": "ups"}]})

    assert only_problem(request) == ("filter.segments[0].segmentNamespace", "unknown key; did you mean 'segmentNs'?")


@pytest.mark.parametrize(
    "request_body, path",
    [
        (body(destination={"datasetId": "d", "segment_per_batch": False}), "destination.segment_per_batch"),
        ({"destination": {"datasetId": "d"}, "schema_": {"name": "s"}}, "schema_"),
        (body(evaluation_info={"segmentation": False}), "evaluation_info"),
    ],
)
def test_snake_case_key_rejected_as_unknown(request_body, path):
    # camelCase only on the wire (exactly the seed's keys); the camelCase key is suggested.
    assert [m for p, m in problems(request_body) if p == path] == [
        f"unknown key; did you mean {to_camel(path.rsplit('.', 1)[-1]).rstrip('_')!r}?"]


def test_unknown_key_containing_brackets_is_reported_at_its_path():
    assert only_problem(body(**{"segments[0]": {"segmentId": "s1"}})) == ("segments[0]", "unknown key")


def test_destination_missing_rejected():
    request = {"schema": {"name": "_xdm.context.profile"}}

    path, message = only_problem(request)
    assert path == "destination"
    assert "required" in message.lower()


def test_destination_dataset_id_missing_rejected():
    path, message = only_problem(body(destination={"segmentPerBatch": False}))

    assert path == "destination.datasetId"
    assert "required" in message.lower()


def test_schema_missing_rejected():
    request = {"destination": {"datasetId": "d"}}

    path, message = only_problem(request)
    assert path == "schema"
    assert "required" in message.lower()


def test_schema_name_missing_rejected():
    assert only_problem(body(schema={}))[0] == "schema.name"


# ---------------------------------------------------------------- rejections: types


def test_segment_per_batch_as_string_rejected():
    path, message = only_problem(body(destination={"datasetId": "d", "segmentPerBatch": "true"}))

    assert path == "destination.segmentPerBatch"
    assert "bool" in message.lower()


def test_version_as_string_rejected():
    path, message = only_problem(body(mergePolicy={"id": "timestampOrdered-none-mp", "version": "1"}))

    assert path == "mergePolicy.version"
    assert "integer" in message.lower()


def test_version_zero_rejected():
    assert only_problem(body(mergePolicy={"id": "p", "version": 0}))[0] == "mergePolicy.version"


def test_empty_profiles_as_number_rejected():
    assert only_problem(body(filter={"emptyProfiles": 1}))[0] == "filter.emptyProfiles"


def test_segmentation_as_string_rejected():
    assert only_problem(body(evaluationInfo={"segmentation": "false"}))[0] == "evaluationInfo.segmentation"


def test_fields_as_list_rejected():
    assert only_problem(body(fields=["identities.id"]))[0] == "fields"


def test_filter_as_list_rejected():
    assert only_problem(body(filter=[]))[0] == "filter"


def test_segment_id_as_number_rejected():
    assert only_problem(body(filter={"segments": [{"segmentId": 42}]}))[0] == "filter.segments[0].segmentId"


# ---------------------------------------------------------------- rejections: timestamps


@pytest.mark.parametrize(
    "value",
    [
        "2018-01-01T00:00:00",  # no zone
        "not a time",  # garbage
        "2018-01-01",  # date only
        "2018-01-01 00:00:00Z",  # space instead of T
        "2018-02-30T00:00:00Z",  # no such day
        "2018-01-01T00:00:00.Z",  # empty fraction
        "",
    ],
)
def test_bad_timestamp_rejected_at_its_path(value):
    path, message = only_problem(body(filter={"fromIngestTimestamp": value}))

    assert path == "filter.fromIngestTimestamp"
    assert repr(value) in message


def test_timestamp_as_epoch_number_rejected():
    path, message = only_problem(body(filter={"fromIngestTimestamp": 1514764800000}))

    assert path == "filter.fromIngestTimestamp"
    assert "RFC 3339" in message


def test_bad_start_time_rejected_at_its_path():
    path, _ = only_problem(window(start="yesterday"))

    assert path == "filter.segmentQualificationTime.startTime"


def test_bad_event_list_timestamp_rejected_at_its_path():
    request = body(additionalFields={"eventList": {"filter": {"toIngestTimestamp": "2018-01-01"}}})

    assert only_problem(request)[0] == "additionalFields.eventList.filter.toIngestTimestamp"


def test_start_time_after_end_time_rejected():
    path, message = only_problem(window("2018-02-01T00:00:00Z", "2018-01-01T00:00:00Z"))

    assert path == "filter.segmentQualificationTime"
    assert message == "startTime is after endTime"


def test_event_list_from_after_to_rejected():
    request = body(additionalFields={"eventList": {"filter": {
        "fromIngestTimestamp": "2020-01-01T00:00:00Z",
        "toIngestTimestamp": "2018-01-01T00:00:00Z",
    }}})

    path, message = only_problem(request)
    assert path == "additionalFields.eventList.filter"
    assert message == "fromIngestTimestamp is after toIngestTimestamp"


# ---------------------------------------------------------------- rejections: segments


def test_empty_segment_list_rejected():
    path, message = only_problem(body(filter={"segments": []}))

    assert path == "filter.segments"
    assert "at least one segment" in message


def test_empty_segment_entry_rejected_at_segment_id():
    path, message = only_problem(body(filter={"segments": [{}]}))

    assert path == "filter.segments[0].segmentId"
    assert "required" in message.lower()


def test_empty_segment_id_rejected():
    path, _ = only_problem(body(filter={"segments": [{"segmentId": ""}]}))

    assert path == "filter.segments[0].segmentId"


def test_empty_segment_namespace_rejected():
    path, _ = only_problem(body(filter={"segments": [{"segmentId": "s1", "segmentNs": ""}]}))

    assert path == "filter.segments[0].segmentNs"


def test_unknown_status_value_rejected_naming_the_value():
    request = body(filter={"segments": [{"segmentId": "s1"}, {"segmentId": "s2", "status": ["realized", "qualified"]}]})

    path, message = only_problem(request)
    assert path == "filter.segments[1].status"
    assert "'qualified'" in message


def test_unknown_single_status_string_rejected_naming_the_value():
    path, message = only_problem(body(filter={"segments": [{"segmentId": "s1", "status": "Realized"}]}))

    assert path == "filter.segments[0].status"
    assert "'Realized'" in message


def test_empty_status_list_rejected():
    assert only_problem(body(filter={"segments": [{"segmentId": "s1", "status": []}]}))[0] == (
        "filter.segments[0].status"
    )


def test_status_listed_twice_rejected():
    path, message = only_problem(
        body(filter={"segments": [{"segmentId": "s1", "status": ["exited", "exited"]}]})
    )

    assert path == "filter.segments[0].status"
    assert "twice" in message


def test_same_segment_listed_twice_rejected():
    request = body(filter={"segments": [
        {"segmentId": "s1"},
        {"segmentId": "s1", "segmentNs": "ups", "status": ["exited"]},
    ]})

    path, message = only_problem(request)
    assert path == "filter.segments"
    assert "'s1'" in message and "twice" in message


def test_segment_per_batch_without_segments_rejected():
    path, message = only_problem(body(destination={"datasetId": "d", "segmentPerBatch": True}))

    assert path == "destination.segmentPerBatch" and "filter.segments" in message


def test_segment_per_batch_with_empty_segments_rejected():
    found = problems(body(destination={"datasetId": "d", "segmentPerBatch": True}, filter={"segments": []}))

    assert "filter.segments" in [path for path, _ in found]


def test_segment_per_batch_without_segments_reported_at_its_path():
    path, _ = only_problem(body(destination={"datasetId": "d", "segmentPerBatch": True}))

    assert path == "destination.segmentPerBatch"


# ---------------------------------------------------------------- rejections: fields


@pytest.mark.parametrize("fields", ["a,,b", "a. b", "a..b", ".a", "a.", "a,b,", "a b"])
def test_malformed_fields_rejected(fields):
    path, message = only_problem(body(fields=fields))

    assert path == "fields"
    assert "dot path" in message


def test_malformed_event_list_fields_rejected():
    path, _ = only_problem(body(additionalFields={"eventList": {"fields": "_id,,timestamp"}}))

    assert path == "additionalFields.eventList.fields"


def test_malformed_field_message_names_the_entry():
    _, message = only_problem(body(fields="identities.id, a. b"))

    assert "'a. b'" in message


# ---------------------------------------------------------------- rejections: body


def test_invalid_json_text_rejected():
    path, message = only_problem('{"destination": ')

    assert path == "$"
    assert "not valid JSON" in message


def test_invalid_utf8_bytes_rejected():
    path, message = only_problem(b"\xff\xfe\x00")

    assert path == "$"
    assert "not valid JSON" in message


def test_json_array_body_rejected():
    assert only_problem("[" + SEED_POST_BODY + "]") == ("$", "body must be a JSON object")


def test_json_scalar_body_rejected():
    assert only_problem("42") == ("$", "body must be a JSON object")


def test_empty_object_lists_both_required_parts():
    assert sorted(problem_paths("{}")) == ["destination", "schema"]


# ---------------------------------------------------------------- several problems


def test_several_problems_all_reported():
    request = {
        "fields": "a,,b",
        "mergePolicy": {"id": "p", "version": "1"},
        "filter": {
            "segments": [{}, {"segmentId": "s2", "status": "bogus"}],
            "segmentQualificationTime": {"startTime": "2018-01-01"},
            "fromIngestTimestamp": "garbage",
        },
        "destination": {"segmentPerBatch": "true"},
        "colour": "blue",
    }

    paths = problem_paths(request)

    assert sorted(paths) == sorted([
        "fields",
        "mergePolicy.version",
        "filter.segments[0].segmentId",
        "filter.segments[1].status",
        "filter.segmentQualificationTime.startTime",
        "filter.fromIngestTimestamp",
        "destination.datasetId",
        "destination.segmentPerBatch",
        "schema",
        "colour",
    ])


def test_rejection_message_lists_every_problem():
    with pytest.raises(RequestRejected) as caught:
        parse_definition(body(foo=1, fields="a,,b"))

    text = str(caught.value)
    assert "foo: unknown key" in text
    assert "fields:" in text


# ---------------------------------------------------------------- json_path


@pytest.mark.parametrize(
    "loc, expected",
    [
        ((), "$"),
        (("fields",), "fields"),
        (("filter", "segments"), "filter.segments"),
        (("filter", "segments", 0, "segmentId"), "filter.segments[0].segmentId"),
        (("filter", "segments", 12, "status", 1), "filter.segments[12].status[1]"),
        (("a", 0, 1, "b"), "a[0][1].b"),
    ],
)
def test_json_path_formatting(loc, expected):
    assert json_path(loc) == expected
