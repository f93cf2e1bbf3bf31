"""service.decode_cursor: the list cursor "{creationTime}_{id}"."""

from __future__ import annotations

import pytest

from jobs.service import decode_cursor as parse_cursor


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
def test_parse_cursor_bad_values_raise_value_error_naming_the_form(text):
    with pytest.raises(ValueError) as caught:
        parse_cursor(text)

    message = str(caught.value)
    assert repr(text) in message
    assert "{creationTime}_{id}" in message


@pytest.mark.parametrize("text", ["²_1", "１２_3", "1_\u0663"])
def test_parse_cursor_rejects_non_ascii_digits_with_cursor_message(text):
    with pytest.raises(ValueError, match="is not a cursor"):
        parse_cursor(text)
