"""Segment definitions (docs/reference/segments.md): the requests, the stored definition, and what an
evaluating job keeps of one. jobs.control.segments checks a definition's expression against the lake.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from jobs.spec.errors import RequestRejected
from jobs.spec.models import Record, SchemaRef, Strict
from jobs.spec.pql import PqlError

PROFILE_SCHEMA = "_xdm.context.profile"


class Expression(Strict):
    type: str
    format: str
    value: str = Field(min_length=1)

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value != "PQL":
            raise ValueError(f"unsupported expression type {value!r}; use PQL")
        return value

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value != "pql/text":
            raise ValueError(f"unsupported expression format {value!r}; use pql/text")
        return value


class SegmentRequest(Strict):
    """The body of POST /segment/definitions."""

    name: str = Field(min_length=1)
    description: str | None = None
    expression: Expression
    merge_policy_id: str | None = Field(default=None, min_length=1)
    schema_: SchemaRef = Field(alias="schema")

    @field_validator("schema_")
    @classmethod
    def _schema(cls, value: SchemaRef) -> SchemaRef:
        if value.name != PROFILE_SCHEMA:
            raise ValueError(f"segments are defined on {PROFILE_SCHEMA}, not {value.name!r}")
        return value


class SegmentPatch(Strict):
    """The body of PATCH /segment/definitions/{id}: the fields to change."""

    name: str | None = Field(default=None, min_length=1)
    description: str | None = None
    expression: Expression | None = None
    merge_policy_id: str | None = Field(default=None, min_length=1)


class ExpressionCheck(Strict):
    """The body of POST /segment/definitions/validate: an expression checked as a definition's would be,
    and not stored."""

    expression: Expression
    merge_policy_id: str | None = Field(default=None, min_length=1)
    # The definition being edited, if any: it may not name itself in inSegment, nor close a cycle.
    id: str | None = Field(default=None, min_length=1)


class PqlProblem(Record):
    """A problem of an expression, at its place in the text (for an editor to mark)."""

    path: str
    message: str
    offset: int  # 0-based, in characters
    length: int  # of the quoted text, at least 1
    line: int  # 1-based
    column: int  # 1-based, in characters

    @classmethod
    def of(cls, text: str, err: PqlError, path: str = "expression.value") -> PqlProblem:
        offset = min(err.position - 1, len(text))
        line_start = text.rfind("\n", 0, offset) + 1
        return cls(path=path, message=str(err), offset=offset, length=max(len(err.text), 1),
                   line=text.count("\n", 0, offset) + 1, column=offset - line_start + 1)


class ExpressionVerdict(Record):
    """The answer of POST /segment/definitions/validate."""

    valid: bool
    errors: list[PqlProblem]


def parse_patch(body: str | bytes | dict[str, Any]) -> SegmentPatch:
    patch = SegmentPatch.parse(body)
    if not patch.model_fields_set:
        raise RequestRejected.at("$", "names nothing to change: send name, description, expression or mergePolicyId")
    return patch


class SegmentDefinition(Record):
    """A stored segment definition; jobs.control.segments checks the requests that make one."""

    id: str
    name: str
    description: str | None = None
    expression: Expression
    merge_policy_id: str
    schema_: SchemaRef = Field(alias="schema")
    ims_org_id: str
    sandbox_name: str
    creation_time: int
    update_time: int

    @property
    def pql(self) -> str:
        return self.expression.value


class SegmentSnapshot(Record):
    """What an evaluating job keeps of a segment's definition."""

    id: str
    name: str
    expression: str  # pql/text
    merge_policy_id: str
    update_time: int

    @classmethod
    def of(cls, definition: SegmentDefinition) -> SegmentSnapshot:
        return cls(id=definition.id, name=definition.name, expression=definition.pql,
                   merge_policy_id=definition.merge_policy_id, update_time=definition.update_time)

