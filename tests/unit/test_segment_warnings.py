"""A segment id that nothing knows: warned about at creation, and noted on the record after a run
that matched no one for it."""

from __future__ import annotations

from jobs.control.runner import matched_nothing
from jobs.planner import segment_warnings
from jobs.spec import JobRecord, JobWarning, parse_definition

from .test_service import record_for


def body(*segments: str, ns: str = "ups") -> dict:
    return {"filter": {"segments": [{"segmentId": s, "segmentNs": ns} for s in segments]},
            "destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}


def definition(*segments: str, ns: str = "ups"):
    return parse_definition(body(*segments, ns=ns))


def no_lake():
    raise AssertionError("the lake is read only when a listed segment has no definition")


def test_defined_segments_need_no_look_at_the_lake():
    assert segment_warnings(definition("a", "b"), {"a", "b"}, no_lake) == []


def test_a_segment_only_the_memberships_know_is_fine():
    assert segment_warnings(definition("a", "m"), {"a"}, lambda: {("ups", "m")}) == []


def test_a_misspelt_id_is_warned_about_with_its_path_and_the_closest_known_id():
    [warning] = segment_warnings(definition("segment-01", "segmnt-02"), {"segment-01"},
                                 lambda: {("ups", "segment-02"), ("ups", "segment-03")})
    assert warning.code == "UNKNOWN_SEGMENT"
    assert warning.path == "filter.segments[1].segmentId"
    assert "'segmnt-02'" in warning.msg and warning.msg.endswith("did you mean 'segment-02'?")


def test_a_membership_in_another_namespace_does_not_count():
    [warning] = segment_warnings(definition("m", ns="other"), set(), lambda: {("ups", "m")})
    assert "no other membership" in warning.msg


def test_a_run_notes_each_segment_no_exported_profile_matched_and_keeps_the_creation_warnings():
    created = JobWarning(code="UNKNOWN_SEGMENT", path="filter.segments[1].segmentId", msg="unknown")
    record: JobRecord = record_for(body("a", "zz")).updated(warnings=[created])
    warnings = matched_nothing(record, {("ups", "a"): 4, ("ups", "zz"): 0})
    assert [w.code for w in warnings] == ["UNKNOWN_SEGMENT", "SEGMENT_MATCHED_NOTHING"]
    assert warnings[1].path == "filter.segments[1]"
    # A retry replaces the run's note instead of adding a second one.
    assert matched_nothing(record.updated(warnings=warnings), {("ups", "a"): 4, ("ups", "zz"): 0}) == warnings


def test_a_read_back_combined_batch_has_no_segment_counts_and_no_note():
    assert matched_nothing(record_for(body("a")), None) == []


def test_the_segments_warned_about_at_creation_are_the_ones_a_combined_run_counts():
    [warning] = segment_warnings(definition("known", "zz"), {"known"}, lambda: set())
    record = record_for(body("known", "zz")).updated(warnings=[warning])
    assert record.unknown_segments == {("ups", "zz")}
    assert record_for(body("known")).unknown_segments == set()
