"""The PQL subset: parsing every form into the typed tree, checking it against schemas, and the
errors a user sees (quoted text and position). No Spark."""

from __future__ import annotations

import datetime as dt

import pytest

from jobs.spec import pql
from jobs.spec.pql import (
    And,
    Compare,
    EventCount,
    In,
    InSegment,
    Like,
    Literal,
    Not,
    NullTest,
    Occurs,
    OccursBetween,
    Or,
    Path,
    PqlError,
    StringTest,
    Truth,
)
from jobs.spec.schema import struct_of

PROFILE = struct_of({
    "person": struct_of({"name": struct_of({"firstName": "string"}), "birthYear": "integer",
                         "birthDate": "date"}),
    "loyalty": struct_of({"tier": "string", "points": "long", "score": "decimal(10,2)", "member": "boolean"}),
    "lastSeen": "timestamp",
    "tags": {"type": "array", "elementType": "string", "containsNull": True},
})
EVENTS = struct_of({"eventType": "string", "timestamp": "timestamp",
                    "commerce": struct_of({"order": struct_of({"priceTotal": "double"})})})


def p(*parts: str) -> Path:
    return Path(0, 0, parts)


def lit(value, kind) -> Literal:
    return Literal(0, 0, value, kind)


@pytest.mark.parametrize("text, tree", [
    ('loyalty.tier = "gold"', Compare(0, 0, "=", p("loyalty", "tier"), lit("gold", "string"))),
    ("loyalty.points >= 100", Compare(0, 0, ">=", p("loyalty", "points"), lit(100, "number"))),
    ("loyalty.score < 2.5", Compare(0, 0, "<", p("loyalty", "score"), lit(2.5, "number"))),
    ("loyalty.member != true", Compare(0, 0, "!=", p("loyalty", "member"), lit(True, "boolean"))),
    ("person.birthDate > date(1990, 1, 31)",
     Compare(0, 0, ">", p("person", "birthDate"), lit(dt.date(1990, 1, 31), "time"))),
    ('loyalty.tier in ["gold", "silver"]',
     In(0, 0, p("loyalty", "tier"), pql.ListLiteral(0, 0, (lit("gold", "string"), lit("silver", "string"))), False)),
    ("loyalty.points notIn [1, 2]",
     In(0, 0, p("loyalty", "points"), pql.ListLiteral(0, 0, (lit(1, "number"), lit(2, "number"))), True)),
    ("person.name.firstName.isNull()", NullTest(0, 0, p("person", "name", "firstName"), True)),
    ("person.name.firstName.isNotNull()", NullTest(0, 0, p("person", "name", "firstName"), False)),
    ('person.name.firstName.startsWith("Ad")', StringTest(0, 0, p("person", "name", "firstName"), "startsWith",
                                                          "Ad", True)),
    ('person.name.firstName.endsWith("A", false)', StringTest(0, 0, p("person", "name", "firstName"), "endsWith",
                                                              "A", False)),
    ('person.name.firstName.contains("d")', StringTest(0, 0, p("person", "name", "firstName"), "contains", "d",
                                                       True)),
    ('person.name.firstName.equals("ADA", false)', StringTest(0, 0, p("person", "name", "firstName"), "equals",
                                                              "ADA", False)),
    ('loyalty.tier like "%ol_"', Like(0, 0, p("loyalty", "tier"), "%ol_")),
    ("lastSeen occurs < 30 days before now", Occurs(0, 0, p("lastSeen"), "<", 30, "days")),
    ("lastSeen occurs > 1 year before now", Occurs(0, 0, p("lastSeen"), ">", 1, "years")),
    ("lastSeen occurs between date(2024, 1, 1) and date(2024, 1, 31)",
     OccursBetween(0, 0, p("lastSeen"), dt.date(2024, 1, 1), dt.date(2024, 1, 31))),
    ('inSegment("gold-members")', InSegment(0, 0, "gold-members")),
    ("loyalty.member", Truth(0, 0, p("loyalty", "member"))),
    ('xEvent[eventType = "commerce.purchase"].count() >= 2',
     Compare(0, 0, ">=", EventCount(0, 0, Compare(0, 0, "=", p("eventType"), lit("commerce.purchase", "string"))),
             lit(2, "number"))),
    ('not(loyalty.tier = "gold")', Not(0, 0, Compare(0, 0, "=", p("loyalty", "tier"), lit("gold", "string")))),
    ("loyalty.points > 1 and loyalty.points < 9 or loyalty.member",
     Or(0, 0, (And(0, 0, (Compare(0, 0, ">", p("loyalty", "points"), lit(1, "number")),
                          Compare(0, 0, "<", p("loyalty", "points"), lit(9, "number")))),
               Truth(0, 0, p("loyalty", "member"))))),
    ("(loyalty.member or loyalty.member) and loyalty.member",
     And(0, 0, (Or(0, 0, (Truth(0, 0, p("loyalty", "member")), Truth(0, 0, p("loyalty", "member")))),
                Truth(0, 0, p("loyalty", "member"))))),
    ('loyalty.tier = "say \\"hi\\""', Compare(0, 0, "=", p("loyalty", "tier"), lit('say "hi"', "string"))),
])
def test_every_form_parses_into_its_tree(text, tree):
    assert pql.parse(text) == tree  # positions are not compared


def test_positions_point_at_the_text():
    expr = pql.parse('loyalty.points > 1 and person.name.firstName = "Ada"')
    assert isinstance(expr, And)
    second = expr.items[1]
    assert (second.start, second.end) == (23, 52)  # person.name.firstName = "Ada"


@pytest.mark.parametrize("text, quoted, position, words", [
    ("loyalty.tier = ", "loyalty.tier =", 1, "ends too early"),
    ('loyalty.tier = "gold" "silver"', '"silver"', 23, "syntax error"),
    ("loyalty.tier # 1", "# 1", 14, "unexpected character"),
    ("sum(loyalty.points) > 1", "sum(loyalty.points)", 1, "unsupported function 'sum'"),
    ("loyalty.tier.trim() = 1", "loyalty.tier.trim()", 1, "unsupported function 'trim'"),
    ("xEvent[eventType = 1].sum() > 1", "sum", 23, "only count()"),
    ("lastSeen occurs <= 3 days before now", "<=", 17, "occurs takes < or >"),
    ("lastSeen occurs between date(2024, 2, 1) and date(2024, 1, 1)", "lastSeen occurs between date(2024, 2, 1) "
     "and date(2024, 1, 1)", 1, "first date is after"),
    ("person.birthDate > date(2024, 2, 30)", "date(2024, 2, 30)", 20, "is not a date"),
    ("inSegment(1)", "inSegment(1)", 1, "inSegment takes one segment id"),
    ('loyalty.tier.startsWith(1)', "loyalty.tier.startsWith(1)", 1, "takes a string"),
    ("loyalty.tier in [loyalty.points]", "loyalty.points", 18, "literal values only"),
    ("", "", 1, "empty"),
])
def test_syntax_and_unsupported_forms_are_rejected_with_text_and_position(text, quoted, position, words):
    with pytest.raises(PqlError) as caught:
        pql.parse(text)
    assert (caught.value.text, caught.value.position) == (quoted, position)
    assert words in str(caught.value) and f"at position {position}" in str(caught.value)


@pytest.mark.parametrize("text, quoted, position, words", [
    ("loyalty.points > " + "9" * 5000, "9" * 5000, 18, "outside the range of a whole number"),
    ("loyalty.points > 9223372036854775808", "9223372036854775808", 18, "outside the range"),
    ("loyalty.points > 1e400", "1e400", 18, "too large a number"),
    ("person.birthDate > date(10000, 1, 1)", "date(10000, 1, 1)", 20, "is not a date"),
    ("person.birthDate < date(9999, 12, 31)", "date(9999, 12, 31)", 20, "after the last date"),
    ("lastSeen occurs < 99999999 years before now", "99999999", 19, "too long a duration"),
    ("lastSeen occurs < 1001 years before now", "1001", 19, "at most 1,000 years"),
    ('loyalty.tier like "gold\\\\"', '"gold\\\\"', 19, "a backslash in a like pattern"),
    ('loyalty.tier like "a\\\\b"', '"a\\\\b"', 19, "must come before %, _ or a backslash"),
    ('loyalty.tier like "' + "%a" * 17 + '"', '"' + "%a" * 17 + '"', 19, "at most 16"),
])
def test_literals_that_could_not_be_evaluated_are_rejected_at_parse(text, quoted, position, words):
    with pytest.raises(PqlError) as caught:
        pql.parse(text)
    assert (caught.value.text, caught.value.position) == (quoted, position)
    assert words in str(caught.value)


def test_literals_at_their_bounds_parse():
    for text in ("loyalty.points > 9223372036854775807", "loyalty.points > -9223372036854775808",
                 "person.birthDate < date(9999, 12, 30)", "lastSeen occurs < 1000 years before now",
                 'loyalty.tier like "' + "%a" * 16 + '"', 'loyalty.tier like "100\\\\% \\\\_ \\\\\\\\"'):
        pql.parse(text)
    assert pql.before(dt.datetime(2026, 12, 6, tzinfo=dt.UTC), 1000, "years").year == 1026


def checked(text: str, segments: set[str] | None = None, events=EVENTS) -> pql.Needs:
    return pql.check(text, pql.parse(text), PROFILE, events, segments)


def test_check_lists_the_leaves_segments_and_event_conditions_an_expression_needs():
    needs = checked('loyalty.tier = "gold" and inSegment("a") and not(inSegment("a")) and '
                    'xEvent[eventType = "x" and commerce.order.priceTotal > 10].count() > 1 and '
                    'xEvent[eventType = "x" and commerce.order.priceTotal > 10].count() < 5')
    assert needs.leaves == ((("loyalty", "tier"), "string"),)
    assert needs.segments == ("a",)
    assert needs.event_conditions == (pql.parse('eventType = "x" and commerce.order.priceTotal > 10'),)


@pytest.mark.parametrize("text, quoted, words", [
    ('loyalty.tierr = "gold"', "loyalty.tierr", "does not exist in the profile schema"),
    ('loyalty.points = "100"', 'loyalty.points = "100"', "compares a number with a string"),
    ("person.name = 1", "person.name", "is a struct"),
    ('tags = "x"', "tags", "is a array<string>"),
    ("loyalty.member > true", "loyalty.member > true", "booleans compare with = or !="),
    ('loyalty.tier in ["a", 1]', "1", "is a number in a list for a string"),
    ("loyalty.points like \"1%\"", "loyalty.points", "is not a string"),
    ("loyalty.tier occurs < 1 days before now", "loyalty.tier", "is not a time"),
    ("loyalty.points", "loyalty.points", "is a value, not a condition"),
    ('inSegment("nope")', 'inSegment("nope")', "unknown segment 'nope'"),
    ('xEvent[eventTyp = "x"].count() > 1', "eventTyp", "does not exist in the event schema"),
    ('xEvent[eventType = "x"].count() > 1.5', 'xEvent[eventType = "x"].count() > 1.5', "whole number"),
    ('xEvent[inSegment("a")].count() > 1', 'inSegment("a")', "about the profile"),
    ("xEvent[xEvent[true].count() > 1].count() > 1", "xEvent[true].count()", "cannot be nested"),
])
def test_check_rejects_unknown_paths_and_mismatched_types(text, quoted, words):
    with pytest.raises(PqlError) as caught:
        checked(text, segments={"a"})
    assert caught.value.text == quoted and words in str(caught.value)


def test_xevent_needs_event_datasets():
    with pytest.raises(PqlError, match="no event datasets"):
        checked('xEvent[eventType = "x"].count() > 1', events=None)


@pytest.mark.parametrize("moment, months, expected", [
    (dt.datetime(2024, 3, 31, 12, tzinfo=dt.UTC), 1, dt.datetime(2024, 2, 29, 12, tzinfo=dt.UTC)),
    (dt.datetime(2024, 1, 15, tzinfo=dt.UTC), 1, dt.datetime(2023, 12, 15, tzinfo=dt.UTC)),
    (dt.datetime(2024, 2, 29, tzinfo=dt.UTC), 12, dt.datetime(2023, 2, 28, tzinfo=dt.UTC)),
    (dt.datetime(2024, 5, 31, tzinfo=dt.UTC), 14, dt.datetime(2023, 3, 31, tzinfo=dt.UTC)),
])
def test_months_are_calendar_months_with_the_day_clamped(moment, months, expected):
    assert pql.months_before(moment, months) == expected


def test_before_now_in_every_unit():
    now = dt.datetime(2024, 3, 31, 12, tzinfo=dt.UTC)
    assert pql.before(now, 5, "hours") == dt.datetime(2024, 3, 31, 7, tzinfo=dt.UTC)
    assert pql.before(now, 2, "days") == dt.datetime(2024, 3, 29, 12, tzinfo=dt.UTC)
    assert pql.before(now, 1, "weeks") == dt.datetime(2024, 3, 24, 12, tzinfo=dt.UTC)
    assert pql.before(now, 1, "months") == dt.datetime(2024, 2, 29, 12, tzinfo=dt.UTC)
    assert pql.before(now, 1, "years") == dt.datetime(2023, 3, 31, 12, tzinfo=dt.UTC)


def test_singular_units_read_as_plural():
    assert pql.parse("lastSeen occurs < 1 day before now") == Occurs(0, 0, p("lastSeen"), "<", 1, "days")
