"""Segment evaluation on merged profiles, in the export's pass (docs/reference/segments.md#segment-evaluation).

A checked PQL tree (jobs.spec.pql) becomes one boolean Spark column; every test that
meets a null is false, so `not(...)` and `or` behave as PQL says. The status
table (jobs.spec.memberships.TRANSITIONS) becomes one CASE per segment, and the
memberships that changed (one flag per segment) become the write-back's rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.engine.columns import IDENTITY_MAP, KEY_ID, KEY_NS, MEMBERSHIP, MEMBERSHIP_MAP, segment_column
from jobs.engine.merge import requested_memberships, without_nulls
from jobs.planner import EvaluatedSegment, EvaluationPlan, ExportPlan
from jobs.spec import QUALIFIED, TRANSITIONS, leaf_column, pql

NAMESPACE = "ups"  # evaluated segments live in AEP's own namespace
COMPARE: dict[str, Callable[[Column, Column], Column]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Scope:
    """Where a condition is evaluated: the columns its names stand for."""

    value: Callable[[pql.Path], Column]  # an attribute's value
    now: datetime
    event_count: Callable[[pql.Expr], Column] | None = None  # on profiles: events meeting a condition


def profile_scope(plan: ExportPlan) -> Scope:
    """Attributes are the merged leaf columns; event counts the events' per-key counts."""
    assert plan.evaluation is not None
    conditions = plan.events.conditions if plan.events is not None else ()
    return Scope(
        value=lambda path: F.col(leaf_column(path.parts)),
        now=plan.evaluation.now,
        event_count=lambda cond: F.coalesce(F.col(event_count_column(conditions.index(cond))), F.lit(0)),
    )


def event_count_column(index: int) -> str:
    return f"_eventCount{index}"


def _false_if_null(test: Column) -> Column:
    return F.coalesce(test, F.lit(False))


def _value(operand: pql.Operand, scope: Scope) -> Column:
    if isinstance(operand, pql.Path):
        return scope.value(operand)
    if isinstance(operand, pql.EventCount):
        assert scope.event_count is not None, "pql.check keeps xEvent out of event conditions"
        return scope.event_count(operand.condition)
    return F.lit(_literal(operand))


def _literal(literal: pql.Literal) -> Any:
    """A literal's value for Spark: a date as the start of its day in UTC, to compare with timestamps."""
    return pql.start_of(literal.value) if isinstance(literal.value, date) else literal.value


def condition(expr: pql.Expr, scope: Scope) -> Column:
    """The boolean column of a checked expression; never null."""
    if isinstance(expr, pql.And):
        return reduce(lambda a, b: a & b, [condition(e, scope) for e in expr.items])
    if isinstance(expr, pql.Or):
        return reduce(lambda a, b: a | b, [condition(e, scope) for e in expr.items])
    if isinstance(expr, pql.Not):
        return ~condition(expr.item, scope)
    if isinstance(expr, pql.Truth):
        return _false_if_null(_value(expr.operand, scope))
    if isinstance(expr, pql.Compare):
        return _false_if_null(COMPARE[expr.op](_value(expr.left, scope), _value(expr.right, scope)))
    if isinstance(expr, pql.In):
        subject = _value(expr.subject, scope)
        member = subject.isin([_literal(item) for item in expr.items.items])
        return _false_if_null(subject.isNotNull() & (~member if expr.negated else member))
    if isinstance(expr, pql.Like):
        return _false_if_null(like(_value(expr.subject, scope), expr.pattern))
    if isinstance(expr, pql.StringTest):
        return _false_if_null(_string_test(expr, _value(expr.subject, scope)))
    if isinstance(expr, pql.NullTest):
        subject = _value(expr.subject, scope)
        return subject.isNull() if expr.is_null else subject.isNotNull()
    if isinstance(expr, pql.Occurs):
        t, bound = _value(expr.subject, scope), F.lit(pql.before(scope.now, expr.amount, expr.unit))
        within = (t > bound) & (t <= F.lit(scope.now)) if expr.op == "<" else t < bound
        return _false_if_null(within)
    if isinstance(expr, pql.OccursBetween):
        t = _value(expr.subject, scope)
        first, after = pql.start_of(expr.first), pql.start_of(expr.last) + timedelta(days=1)
        return _false_if_null((t >= F.lit(first)) & (t < F.lit(after)))
    if isinstance(expr, pql.InSegment):
        return qualified(F.col(segment_column(NAMESPACE, expr.segment_id)))
    raise AssertionError(f"no compiler for {type(expr).__name__}")


def like(subject: Column, pattern: str) -> Column:
    """`subject like pattern`: the common forms as string tests, which cost what Spark's own `like`
    does once its optimizer simplifies them; any other as like_regex."""
    pieces = _like_pieces(pattern)
    if any(ONE_CHARACTER in piece for piece in pieces):
        return subject.rlike(like_regex(pattern))
    texts = ["".join(c for c in piece if c is not None) for piece in pieces]
    if len(texts) == 1:
        return subject == F.lit(texts[0])
    if len(texts) == 3 and texts[0] == texts[2] == "":
        return subject.contains(texts[1])
    if len(texts) == 2:
        first, last = texts
        if not last:
            return subject.startswith(first)
        if not first:
            return subject.endswith(last)
        long_enough = F.length(subject) >= len(first) + len(last)  # `ab%bc` is not "abc"
        return long_enough & subject.startswith(first) & subject.endswith(last)
    return subject.rlike(like_regex(pattern))


ONE_CHARACTER = None  # `_` in a piece of _like_pieces


def _like_pieces(pattern: str) -> list[list[str | None]]:
    """The pieces between a pattern's `%`s: their characters, escapes resolved, `_` as ONE_CHARACTER."""
    pieces: list[list[str | None]] = [[]]
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):  # pql.parse allows it before %, _ or itself only
            pieces[-1].append(pattern[i + 1])
            i += 2
            continue
        if char == "%":
            pieces.append([])
        else:
            pieces[-1].append(ONE_CHARACTER if char == "_" else char)
        i += 1
    return pieces


def like_regex(pattern: str) -> str:
    r"""A `like` pattern (`%`, `_`, `\` before either or itself) as a Java regex that never backtracks.

    Spark's own `like` becomes a regex whose every `%` is `.*`: with many of them, a value that
    almost matches costs exponential time. Here every `%` but the last is an atomic lazy group,
    `(?>.*?piece)`, which keeps the leftmost match of the piece after it. The pieces between `%`s
    have a fixed length (`_` is one character), so the leftmost match of each leaves the most
    room for the rest: nothing is lost, and the cost is linear in the value's length for each piece.
    """
    pieces = ["".join("." if c is ONE_CHARACTER else _regex_literal(c) for c in piece)
              for piece in _like_pieces(pattern)]
    if len(pieces) == 1:
        return rf"(?s)\A{pieces[0]}\z"
    first, *middle, last = pieces
    return rf"(?s)\A{first}" + "".join(f"(?>.*?{piece})" for piece in middle) + rf".*{last}\z"


def _regex_literal(char: str) -> str:
    return char if char.isascii() and char.isalnum() else f"\\x{{{ord(char):x}}}"


def _string_test(expr: pql.StringTest, subject: Column) -> Column:
    argument = expr.argument if expr.case_sensitive else expr.argument.lower()
    value = subject if expr.case_sensitive else F.lower(subject)
    if expr.test == "startsWith":
        return value.startswith(argument)
    if expr.test == "endsWith":
        return value.endswith(argument)
    if expr.test == "contains":
        return value.contains(argument)
    return value == F.lit(argument)


def qualified(membership: Column) -> Column:
    """The membership is realized or existing (what inSegment tests)."""
    return _false_if_null(membership["status"].isin(list(QUALIFIED)))


def evaluated_membership(previous: Column, qualifies: Column, now: datetime) -> Column:
    """TRANSITIONS as one CASE: the membership after the evaluation, null for none."""
    status = previous["status"]
    known = F.when(status.isin("realized", "existing", "exited"), status)
    case: Column | None = None
    for (before, qualifying), (after, time) in TRANSITIONS.items():
        if after is None:
            continue
        when = (known.isNull() if before is None else known == before) & (qualifies if qualifying else ~qualifies)
        kept = previous["lastQualificationTime"] if time == "kept" else F.lit(now)
        value = F.struct(F.lit(after).alias("status"), kept.alias("lastQualificationTime")).cast(MEMBERSHIP)
        case = F.when(when, value) if case is None else case.when(when, value)
    assert case is not None
    return case


def evaluate(profiles: DataFrame, plan: ExportPlan) -> DataFrame:
    """Each evaluated segment's membership column replaced by its evaluated membership, with a
    flag that says whether it changed (changed_column), then segmentMembership rebuilt from them.

    A segment whose expression names another evaluated segment in inSegment reads that
    one's new membership: segments are evaluated in levels, one projection per level.
    """
    evaluation = plan.evaluation
    assert evaluation is not None
    scope = profile_scope(plan)
    for level in _levels(evaluation):
        replaced = {segment_column(NAMESPACE, s.segment_id): s for s in level}
        columns = []
        for name in profiles.columns:
            segment = replaced.get(name)
            if segment is None:
                columns.append(F.col(name))
                continue
            before = F.col(name)
            new = evaluated_membership(before, condition(segment.expression, scope), evaluation.now)
            columns += [new.alias(name), (~new.eqNullSafe(before)).alias(changed_column(segment.segment_id))]
        profiles = profiles.select(*columns)
    return with_memberships(profiles, plan)


def with_memberships(profiles: DataFrame, plan: ExportPlan) -> DataFrame:
    return profiles.withColumn("segmentMembership", requested_memberships(plan.segment_refs))


def changed_column(segment_id: str) -> str:
    return "_changed" + segment_column(NAMESPACE, segment_id)


def flattened(profiles: DataFrame, plan: ExportPlan) -> DataFrame:
    """The evaluated profiles in the shape Spark's cache stores compactly: each evaluated membership
    as its status and time, and no segmentMembership (with_memberships rebuilds it).

    The cache compresses columns of plain values but keeps a struct or a map as an uncompressed
    row, so the evaluated profiles with their maps were large to keep (docs/performance.md#segment-evaluation).
    """
    evaluated = set(_evaluated_columns(plan))
    columns = []
    for name in profiles.columns:
        if name in evaluated:
            status, time = _flat_names(name)
            columns += [F.col(name)["status"].alias(status), F.col(name)["lastQualificationTime"].alias(time)]
        elif name != "segmentMembership":
            columns.append(F.col(name))
    return profiles.select(*columns)


def unflattened(flat: DataFrame, plan: ExportPlan) -> DataFrame:
    """The flattened profiles as evaluate gave them (an evaluated membership has a status or is null)."""
    evaluated = {name: _flat_names(name) for name in _evaluated_columns(plan)}
    columns = []
    for name, (status, time) in evaluated.items():
        value = F.struct(F.col(status).alias("status"), F.col(time).alias("lastQualificationTime")).cast(MEMBERSHIP)
        columns.append(F.when(F.col(status).isNotNull(), value).alias(name))
    flat_names = {part for parts in evaluated.values() for part in parts}
    kept = [F.col(c) for c in flat.columns if c not in flat_names]
    return with_memberships(flat.select(*kept, *columns), plan)


def _evaluated_columns(plan: ExportPlan) -> list[str]:
    assert plan.evaluation is not None
    return [segment_column(NAMESPACE, s.segment_id) for s in plan.evaluation.segments]


def _flat_names(name: str) -> tuple[str, str]:
    """The status and time columns of a flattened membership column."""
    return "_status" + name, "_time" + name


def _levels(evaluation: EvaluationPlan) -> list[list[EvaluatedSegment]]:
    """The segments grouped so that a group reads only the groups before it."""
    level: dict[str, int] = {}
    for segment in evaluation.segments:  # dependency order: references come first
        refs = [r.segment_id for r in pql.segment_references(segment.expression) if r.segment_id in level]
        level[segment.segment_id] = 1 + max((level[r] for r in refs), default=-1)
    groups: list[list[EvaluatedSegment]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for segment in evaluation.segments:
        groups[level[segment.segment_id]].append(segment)
    return groups


def writeback_rows(profiles: DataFrame, evaluation: EvaluationPlan) -> DataFrame:
    """One fragment per evaluated profile whose membership changed in some segment: its key as the
    primary identity, ingested `now`, with the changed memberships only."""
    ids = [s.segment_id for s in evaluation.segments]
    changed = [F.col(changed_column(i)) for i in ids]
    entries = F.array(*[F.when(flag, F.struct(F.lit(i).alias("k"), F.col(segment_column(NAMESPACE, i)).alias("v")))
                        for i, flag in zip(ids, changed, strict=True)])
    memberships = F.map_from_entries(without_nulls(entries, f"struct<k: string, v: {MEMBERSHIP}>"))
    key = F.array(F.struct(F.col(KEY_ID).alias("id"), F.lit(True).alias("primary")))
    return profiles.where(reduce(lambda a, b: a | b, changed)).select(
        F.create_map(F.col(KEY_NS), key).cast(IDENTITY_MAP).alias("identityMap"),
        F.lit(evaluation.now).cast("timestamp").alias("_ingestTime"),
        F.create_map(F.lit(NAMESPACE), memberships).cast(MEMBERSHIP_MAP).alias("segmentMembership"),
    )
