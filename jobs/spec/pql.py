"""The PQL subset of segment definitions (docs/reference/segments.md#the-pql-subset): parsed and checked, no Spark.

`parse` turns `pql/text` into a typed tree with lark; `check` verifies it
against the merged profile schema (and the event schema under `xEvent[...]`)
and says which profile leaves, segments and event conditions it needs. The
engine compiles the checked tree to Spark columns (jobs.engine.evaluation);
nothing here ever becomes SQL text.

A `PqlError` quotes the offending text and gives its position (1-based
character offset in the expression), e.g. `'loyalty.tierr' at position 1: ...`.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from typing import Literal as Lit

from lark import Lark, Token, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from jobs.spec.errors import EXIT_REJECTED, ExportJobsError
from jobs.spec.schema import JsonType, type_at, type_text

GRAMMAR = r"""
start: expr

?expr: conj
     | expr "or" conj               -> or_
?conj: unary
     | conj "and" unary             -> and_
?unary: "not" "(" expr ")"          -> not_
      | test
?test: operand COMPARE operand      -> compare
     | operand "in" list            -> in_
     | operand "notIn" list         -> not_in
     | operand "like" STRING        -> like
     | path "occurs" COMPARE INT UNIT "before" "now"       -> occurs
     | path "occurs" "between" operand "and" operand       -> occurs_between
     | operand                      -> truth
?operand: "(" expr ")"
        | literal
        | path
        | call
        | event_call
call: path "(" [operand ("," operand)*] ")"
event_call: "xEvent" "[" expr "]" "." NAME "(" ")"
path: NAME ("." NAME)*
?literal: STRING                    -> string
        | SIGNED_NUMBER             -> number
        | "true"                    -> true
        | "false"                   -> false
        | list
list: "[" [operand ("," operand)*] "]"

COMPARE: "!=" | "<=" | ">=" | "=" | "<" | ">"
UNIT.2: /(hour|day|week|month|year)s?\b/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /"(\\.|[^"\\])*"/
INT: /[0-9]+/

%import common.SIGNED_NUMBER
%import common.WS
%ignore WS
"""


@functools.cache
def parser() -> Lark:
    """The PQL parser, built on first use (building it takes a third of a second)."""
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)

UNITS = ("hours", "days", "weeks", "months", "years")
# Bounds on literals, so that every expression accepted at creation can be evaluated (a number Spark
# holds, a duration whose instant exists, a date whose next day does), and so that a `like`
# pattern stays cheap to match (engine/evaluation.py compiles it to a regex without backtracking).
LONG_RANGE = (-(2**63), 2**63 - 1)
MAX_DURATION_HOURS = 1_000 * 366 * 24  # `occurs < N units before now`: at most 1,000 years back
HOURS_PER_UNIT = {"hours": 1, "days": 24, "weeks": 24 * 7, "months": 31 * 24, "years": 366 * 24}
MAX_LIKE_WILDCARDS = 16
LAST_DATE = dt.date(9999, 12, 30)  # a date's day after must exist (occurs between includes the last day)
STRING_TESTS = ("startsWith", "endsWith", "contains", "equals")
NULL_TESTS = ("isNull", "isNotNull")
SUPPORTED = "comparisons, in/notIn, like, and/or/not, isNull/isNotNull, startsWith/endsWith/contains/equals, " \
            "occurs, xEvent[...].count(), inSegment, date"

ValueType = Lit["string", "number", "boolean", "time"]


class PqlError(ExportJobsError, ValueError):
    """A definition that cannot be accepted; the message quotes the text and its position."""

    code = "INVALID_PQL"
    http_status = 400
    exit_code = EXIT_REJECTED

    def __init__(self, text: str, start: int, message: str):
        self.text, self.position = text, start + 1
        super().__init__(f"{text!r} at position {start + 1}: {message}")


# ---------------------------------------------------------------- the tree


@dataclass(frozen=True)
class Located:
    start: int = field(compare=False)  # 0-based character offsets into the expression
    end: int = field(compare=False)


@dataclass(frozen=True)
class Path(Located):
    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Literal(Located):
    value: str | int | float | bool | dt.date
    type: ValueType


@dataclass(frozen=True)
class ListLiteral(Located):
    items: tuple[Literal, ...]


@dataclass(frozen=True)
class EventCount(Located):
    """`xEvent[condition].count()`: how many of the profile's events meet the condition."""

    condition: Expr


Operand = Path | Literal | EventCount


@dataclass(frozen=True)
class Compare(Located):
    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True)
class In(Located):
    subject: Operand
    items: ListLiteral
    negated: bool


@dataclass(frozen=True)
class Like(Located):
    subject: Operand
    pattern: str


@dataclass(frozen=True)
class StringTest(Located):
    subject: Operand
    test: str  # one of STRING_TESTS
    argument: str
    case_sensitive: bool


@dataclass(frozen=True)
class NullTest(Located):
    subject: Path
    is_null: bool


@dataclass(frozen=True)
class Occurs(Located):
    """`t occurs < N unit before now` (op "<": within the last N units) or `>` (longer ago)."""

    subject: Path
    op: str
    amount: int
    unit: str  # one of UNITS


@dataclass(frozen=True)
class OccursBetween(Located):
    subject: Path
    first: dt.date
    last: dt.date  # inclusive: the whole day


@dataclass(frozen=True)
class InSegment(Located):
    segment_id: str


@dataclass(frozen=True)
class Truth(Located):
    """A boolean operand standing as a condition (a boolean attribute, true, false)."""

    operand: Operand


@dataclass(frozen=True)
class And(Located):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or(Located):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not(Located):
    item: Expr


Expr = Compare | In | Like | StringTest | NullTest | Occurs | OccursBetween | InSegment | Truth | And | Or | Not


# ---------------------------------------------------------------- parsing


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Expr:
    """The typed tree of a `pql/text` expression; raises PqlError on a syntax error or an unsupported form.

    Cached by the text: a definition is parsed once per process, not on every write in its scope
    (each checks the scope's other definitions). The tree is immutable, so sharing it is safe.
    """
    if not text.strip():
        raise PqlError(text, 0, "the expression is empty")
    try:
        tree = parser().parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(text, err) from None
    try:
        return _Builder(text).condition(tree.children[0])
    except RecursionError:  # check_size refuses such depth at creation; this guards every other caller
        raise PqlError(text[:20], 0, "is nested too deeply") from None


def check_size(text: str, max_length: int, max_nesting: int) -> None:
    """Refuse an expression longer than `max_length` characters or nested (parentheses, brackets)
    deeper than `max_nesting`, before it is parsed."""
    if len(text) > max_length:
        raise PqlError(text[:20], 0, f"is {len(text)} characters long; an expression takes at most {max_length}")
    depth, in_string, escaped = 0, False, False
    for at, char in enumerate(text):
        if in_string:
            escaped, in_string = (not escaped and char == "\\"), in_string and (escaped or char != '"')
        elif char == '"':
            in_string = True
        elif char in "([":
            depth += 1
            if depth > max_nesting:
                raise PqlError(text[at:at + 20], at, f"is nested more than {max_nesting} levels deep")
        elif char in ")]":
            depth -= 1


def _syntax_error(text: str, err: UnexpectedInput) -> PqlError:
    token = getattr(err, "token", None)
    at = err.pos_in_stream if err.pos_in_stream is not None else len(text)
    if isinstance(err, UnexpectedEOF) or (token is not None and token.type == "$END") or at >= len(text):
        start = max(len(text.rstrip()) - 20, 0)
        return PqlError(text[start:].rstrip(), start, "the expression ends too early")
    if isinstance(err, UnexpectedCharacters):
        return PqlError(text[at:at + 20], at, f"unexpected character {text[at]!r}")
    word = str(token) if token is not None else text[at:at + 20]
    return PqlError(word, at, f"unexpected {word!r} (syntax error)")


def _span(node: Tree[Token] | Token) -> tuple[int, int]:
    if isinstance(node, Token):
        assert node.start_pos is not None and node.end_pos is not None
        return node.start_pos, node.end_pos
    return node.meta.start_pos, node.meta.end_pos


@dataclass(frozen=True)
class _Call:
    """A call before it is known what it names: `name(args)` or `subject.method(args)`."""

    start: int
    end: int
    path: Path
    args: tuple[Any, ...]


class _Builder:
    """lark's parse tree → the typed tree, bottom-up; calls are resolved to the forms they name."""

    def __init__(self, text: str):
        self.text = text

    def error(self, node: Located | _Call | Tree[Token] | Token, message: str) -> PqlError:
        start, end = (node.start, node.end) if isinstance(node, (Located, _Call)) else _span(node)
        return PqlError(self.text[start:end], start, message)

    def condition(self, node: Tree[Token] | Token) -> Expr:
        built = self.build(node)
        if isinstance(built, _Call):
            built = self.resolve(built)
        if isinstance(built, (Path, Literal, EventCount)):
            return Truth(built.start, built.end, built)
        if isinstance(built, ListLiteral):
            raise self.error(built, "a list can only follow in or notIn")
        return built

    def operand(self, node: Tree[Token] | Token) -> Operand:
        built = self.build(node)
        if isinstance(built, _Call):
            built = self.resolve(built)
        if isinstance(built, (Path, Literal, EventCount)):
            return built
        if isinstance(built, ListLiteral):
            raise self.error(built, "a list can only follow in or notIn")
        raise self.error(built, "is a condition, not a value to compare")

    def build(self, node: Tree[Token] | Token) -> Any:
        if isinstance(node, Token):
            raise self.error(node, "unexpected token")
        rule, kids = str(node.data), node.children
        start, end = _span(node)
        if rule == "path":
            return Path(start, end, tuple(str(t) for t in kids))
        if rule == "string":
            return Literal(start, end, _unquote(str(kids[0])), "string")
        if rule == "number":
            return Literal(start, end, self.number(node, str(kids[0])), "number")
        if rule in ("true", "false"):
            return Literal(start, end, rule == "true", "boolean")
        if rule == "list":
            return ListLiteral(start, end, tuple(self.literal(k) for k in kids))
        if rule == "call":
            path = self.build(kids[0])
            return _Call(start, end, path, tuple(self.build(k) for k in kids[1:]))
        if rule == "event_call":
            condition, method = self.condition(kids[0]), kids[1]
            if str(method) != "count":
                raise self.error(method, f"unsupported function '{method}' on xEvent; only count() is supported")
            return EventCount(start, end, condition)
        if rule in ("or_", "and_"):
            # `a and b and c` is a left-deep tree: walk its spine, not recurse into it.
            operands: list[Tree[Token] | Token] = []
            spine: Tree[Token] | Token = node
            while isinstance(spine, Tree) and str(spine.data) == rule:
                operands.append(spine.children[1])
                spine = spine.children[0]
            operands.append(spine)
            kind = Or if rule == "or_" else And
            return kind(start, end, _flatten(kind, [self.condition(k) for k in reversed(operands)]))
        if rule == "not_":
            return Not(start, end, self.condition(kids[0]))
        if rule == "truth":
            return self.condition(kids[0])
        if rule == "compare":
            return Compare(start, end, str(kids[1]), self.operand(kids[0]), self.operand(kids[2]))
        if rule in ("in_", "not_in"):
            items = self.build(kids[1])
            return In(start, end, self.operand(kids[0]), items, rule == "not_in")
        if rule == "like":
            return Like(start, end, self.operand(kids[0]), self.like_pattern(kids[1]))
        if rule == "occurs":
            op, unit = str(kids[1]), str(kids[3])
            if op not in ("<", ">"):
                raise self.error(kids[1], f"occurs takes < or >, not {op}")
            subject = self.build(kids[0])
            units = unit if unit.endswith("s") else unit + "s"
            digits = str(kids[2])
            if len(digits) > 12 or int(digits) * HOURS_PER_UNIT[units] > MAX_DURATION_HOURS:
                raise self.error(kids[2], "is too long a duration: occurs looks back at most 1,000 years")
            return Occurs(start, end, subject, op, int(digits), units)
        if rule == "occurs_between":
            first, last = (self.date_bound(k) for k in kids[1:3])
            if first > last:
                raise self.error(node, "the first date is after the second")
            return OccursBetween(start, end, self.build(kids[0]), first, last)
        raise AssertionError(f"no rule for {rule}")

    def number(self, node: Tree[Token], text: str) -> int | float:
        """A number literal Spark can hold: a 64-bit whole number or a finite double."""
        if any(c in text for c in ".eE"):
            value = float(text)
            if not math.isfinite(value):
                raise self.error(node, "is too large a number")
            return value
        low, high = LONG_RANGE
        if len(text.lstrip("+-")) > 19 or not low <= int(text) <= high:
            raise self.error(node, "is outside the range of a whole number (64 bits)")
        return int(text)

    def like_pattern(self, token: Tree[Token] | Token) -> str:
        r"""The pattern of `like`: `%` any text, `_` one character, `\` before either (or itself) for it
        as it is; a pattern ending in `\` or escaping another character is refused, as is one with
        more than MAX_LIKE_WILDCARDS `%`."""
        pattern = _unquote(str(token))
        i, wildcards = 0, 0
        while i < len(pattern):
            if pattern[i] == "\\":
                if i + 1 == len(pattern) or pattern[i + 1] not in "%_\\":
                    raise self.error(token, "a backslash in a like pattern must come before %, _ or a backslash")
                i += 2
                continue
            wildcards += pattern[i] == "%"
            i += 1
        if wildcards > MAX_LIKE_WILDCARDS:
            raise self.error(token, f"has {wildcards} % wildcards; a like pattern takes at most {MAX_LIKE_WILDCARDS}")
        return pattern

    def literal(self, node: Tree[Token] | Token) -> Literal:
        item = self.operand(node)
        if not isinstance(item, Literal):
            raise self.error(item, "a list holds literal values only")
        return item

    def date_bound(self, node: Tree[Token] | Token) -> dt.date:
        bound = self.operand(node)
        if not (isinstance(bound, Literal) and isinstance(bound.value, dt.date)):
            raise self.error(bound, "occurs between takes two dates, e.g. date(2024, 1, 31)")
        return bound.value

    def resolve(self, call: _Call) -> Expr | Literal:
        parts, args = call.path.parts, call.args
        name = parts[-1]
        if len(parts) == 1:
            if name == "date":
                return self.date(call)
            if name == "inSegment":
                if len(args) != 1 or not (isinstance(args[0], Literal) and args[0].type == "string"):
                    raise self.error(call, 'inSegment takes one segment id, e.g. inSegment("segment-01")')
                return InSegment(call.start, call.end, str(args[0].value))
            raise self.error(call, f"unsupported function '{name}'; supported: {SUPPORTED}")
        subject = Path(call.path.start, call.path.start + len(".".join(parts[:-1])), parts[:-1])
        if name in NULL_TESTS:
            if args:
                raise self.error(call, f"{name}() takes no arguments")
            return NullTest(call.start, call.end, subject, name == "isNull")
        if name in STRING_TESTS:
            literals = [a for a in args if isinstance(a, Literal)]
            if not (1 <= len(args) <= 2 and len(literals) == len(args) and literals[0].type == "string"
                    and (len(args) == 1 or literals[1].type == "boolean")):
                raise self.error(call, f"{name} takes a string and, optionally, false for a case-insensitive "
                                       f'match, e.g. {name}("gold", false)')
            sensitive = len(args) == 1 or bool(literals[1].value)
            return StringTest(call.start, call.end, subject, name, str(literals[0].value), sensitive)
        raise self.error(call, f"unsupported function '{name}'; supported: {SUPPORTED}")

    def date(self, call: _Call) -> Literal:
        numbers = [a.value for a in call.args
                   if isinstance(a, Literal) and a.type == "number" and isinstance(a.value, int)]
        if len(call.args) != 3 or len(numbers) != 3:
            raise self.error(call, "date takes a year, a month and a day, e.g. date(2024, 1, 31)")
        try:
            day = dt.date(*numbers)
        except (ValueError, OverflowError) as err:
            raise self.error(call, f"is not a date: {err}") from None
        if day > LAST_DATE:
            raise self.error(call, f"is after the last date a segment can use, {LAST_DATE.isoformat()}")
        return Literal(call.start, call.end, day, "time")


def _unquote(text: str) -> str:
    """A STRING token's value: the quotes off, JSON-style escapes resolved."""
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "/": "/"}
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append(escapes.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def _flatten(kind: type[And] | type[Or], items: list[Expr]) -> tuple[Expr, ...]:
    out: list[Expr] = []
    for item in items:
        out.extend(item.items if isinstance(item, kind) else [item])
    return tuple(out)


# ---------------------------------------------------------------- checking


@dataclass(frozen=True)
class Needs:
    """What a checked expression reads."""

    leaves: tuple[tuple[tuple[str, ...], JsonType], ...]  # profile leaves and their types
    segments: tuple[str, ...]  # ids named by inSegment
    event_conditions: tuple[Expr, ...]  # the conditions of xEvent[...], each once


NUMBER_TYPES = ("byte", "short", "integer", "long", "float", "double")


def value_type(t: JsonType) -> ValueType | None:
    """The PQL type of a Delta type, or None for what PQL cannot compare (structs, arrays, maps, binary)."""
    if not isinstance(t, str):
        return None
    if t == "string":
        return "string"
    if t in NUMBER_TYPES or t.startswith("decimal"):
        return "number"
    if t == "boolean":
        return "boolean"
    if t in ("timestamp", "timestamp_ntz", "date"):
        return "time"
    return None


class _Checker:
    def __init__(self, text: str, profile: Mapping[str, Any], events: Mapping[str, Any] | None,
                 segments: set[str] | None):
        self.text, self.profile, self.events, self.segments = text, profile, events, segments
        self.leaves: dict[tuple[str, ...], JsonType] = {}
        self.segment_refs: list[str] = []
        self.conditions: list[Expr] = []

    def error(self, node: Located, message: str) -> PqlError:
        return PqlError(self.text[node.start:node.end], node.start, message)

    def attribute(self, path: Path, in_event: bool) -> ValueType:
        schema = self.events if in_event else self.profile
        assert schema is not None
        t = type_at(dict(schema), path.parts)
        if t is None:
            where = "event" if in_event else "profile"
            raise self.error(path, f"does not exist in the {where} schema")
        kind = value_type(t)
        if kind is None:
            raise self.error(path, f"is a {type_text(t)}; a condition compares values (strings, numbers, "
                                   "booleans, times), not structs, arrays or maps")
        if not in_event:
            self.leaves[path.parts] = t
        return kind

    def operand(self, node: Operand, in_event: bool) -> ValueType:
        if isinstance(node, Path):
            return self.attribute(node, in_event)
        if isinstance(node, Literal):
            return node.type
        if in_event:
            raise self.error(node, "xEvent[...] cannot be nested in another xEvent condition")
        if self.events is None:
            raise self.error(node, "the deployment declares no event datasets to count events in")
        self.condition(node.condition, True)
        if node.condition not in self.conditions:
            self.conditions.append(node.condition)
        return "number"

    def condition(self, node: Expr, in_event: bool = False) -> None:
        if isinstance(node, (And, Or)):
            for item in node.items:
                self.condition(item, in_event)
        elif isinstance(node, Not):
            self.condition(node.item, in_event)
        elif isinstance(node, Truth):
            if self.operand(node.operand, in_event) != "boolean":
                raise self.error(node, "is a value, not a condition: compare it, e.g. with =")
        elif isinstance(node, Compare):
            left, right = self.operand(node.left, in_event), self.operand(node.right, in_event)
            if left != right:
                raise self.error(node, f"compares a {left} with a {right}")
            if left == "boolean" and node.op not in ("=", "!="):
                raise self.error(node, f"booleans compare with = or !=, not {node.op}")
            if isinstance(node.left, EventCount) or isinstance(node.right, EventCount):
                other = node.right if isinstance(node.left, EventCount) else node.left
                if not (isinstance(other, Literal) and isinstance(other.value, int)):
                    raise self.error(node, "xEvent[...].count() compares with a whole number")
        elif isinstance(node, In):
            subject = self.operand(node.subject, in_event)
            for element in node.items.items:
                if element.type != subject:
                    raise self.error(element, f"is a {element.type} in a list for a {subject}")
        elif isinstance(node, (Like, StringTest)):
            if self.operand(node.subject, in_event) != "string":
                raise self.error(node.subject, "is not a string")
        elif isinstance(node, NullTest):
            self.operand(node.subject, in_event)
        elif isinstance(node, (Occurs, OccursBetween)):
            if self.operand(node.subject, in_event) != "time":
                raise self.error(node.subject, "is not a time: occurs needs a timestamp or date attribute")
        elif isinstance(node, InSegment):
            if in_event:
                raise self.error(node, "inSegment is about the profile, not about an event")
            if self.segments is not None and node.segment_id not in self.segments:
                raise self.error(node, f"names unknown segment {node.segment_id!r}")
            if node.segment_id not in self.segment_refs:
                self.segment_refs.append(node.segment_id)


def check(text: str, expr: Expr, profile: Mapping[str, Any], events: Mapping[str, Any] | None,
          segments: set[str] | None = None) -> Needs:
    """Verify `expr` (parsed from `text`) against the merged profile schema and the merged event
    schema (None: no event datasets); `segments`: the ids inSegment may name (None: any)."""
    checker = _Checker(text, profile, events, segments)
    checker.condition(expr)
    return Needs(tuple(checker.leaves.items()), tuple(checker.segment_refs), tuple(checker.conditions))


def segment_references(expr: Expr) -> Iterator[InSegment]:
    """Every inSegment(...) of an expression, in order."""
    if isinstance(expr, InSegment):
        yield expr
    elif isinstance(expr, (And, Or)):
        for item in expr.items:
            yield from segment_references(item)
    elif isinstance(expr, Not):
        yield from segment_references(expr.item)


# ---------------------------------------------------------------- time


def months_before(moment: dt.datetime, months: int) -> dt.datetime:
    """`moment` minus whole calendar months, the day clamped to the month's length (Mar 31 - 1 → Feb 28/29)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    next_month = dt.date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_month - dt.timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def before(now: dt.datetime, amount: int, unit: str) -> dt.datetime:
    """The instant `amount` `unit`s before `now`."""
    if unit == "months":
        return months_before(now, amount)
    if unit == "years":
        return months_before(now, 12 * amount)
    hours = {"hours": 1, "days": 24, "weeks": 24 * 7}[unit]
    return now - dt.timedelta(hours=hours * amount)


def start_of(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
