"""The list cursor "{creationTime}_{id}" (jobs.control.pages): jobs' numeric ids, segments' uuids."""

from __future__ import annotations

import pytest

from jobs.control.pages import JOB_CURSOR, SEGMENT_CURSOR
from jobs.spec import RequestRejected

parse_cursor = JOB_CURSOR.decode


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1538615973895_100", (1538615973895, 100)),
        ("0_0", (0, 0)),
        ("1_2", (1, 2)),
        ("0001000_007", (1000, 7)),
    ],
)
def test_parse_cursor_good_values(text, expected):
    assert parse_cursor(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "_",
        "1538615973895",  # no id
        "1538615973895_",  # empty id
        "_100",  # empty creation time
        "1_2_3",  # one separator too many
        "-1_2",  # negative
        "1_-2",
        "1.5_2",
        "1e3_2",
        "abc_1",
        "1_abc",
        " 1_2",
        "1_2 ",
        "1 _2",
        "1-2",
        "0x10_1",
    ],
)
def test_parse_cursor_bad_values_are_rejected_naming_the_offset_and_the_form(text):
    with pytest.raises(RequestRejected) as caught:
        parse_cursor(text)

    message = str(caught.value)
    assert [p.path for p in caught.value.problems] == ["offset"]
    assert repr(text) in message
    assert "{creationTime}_{id}" in message


@pytest.mark.parametrize("text", ["²_1", "\uff11\uff12_3", "1_\u0663"])
def test_parse_cursor_rejects_non_ascii_digits_with_cursor_message(text):
    with pytest.raises(RequestRejected, match="is not a cursor"):
        parse_cursor(text)


def test_a_cursor_decodes_what_it_encodes():
    assert JOB_CURSOR.decode(JOB_CURSOR.encode(1538615973895, 100)) == (1538615973895, 100)
    key = "0b5c6d1e-8a7f-4e2b-9c3d-1f2a3b4c5d6e"
    assert SEGMENT_CURSOR.decode(SEGMENT_CURSOR.encode(7, key)) == (7, key)


def test_a_segment_cursor_is_no_job_cursor():
    with pytest.raises(RequestRejected):
        JOB_CURSOR.decode("7_0b5c6d1e-8a7f")
