"""Segment definitions (README, "Segment definitions"): the request and record models, and the checks
that make a definition acceptable. No Spark; lake schemas are read with delta-rs.

A definition is checked when it is created or changed: its PQL expression must
parse, fit the merged profile schema of its merge policy (and the event schema
under `xEvent[...]`), and name in `inSegment` only segments that exist, without a
cycle. Every problem is a `Problem` with its JSON path (`expression.value`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError, field_validator

from jobs.config import Config, MergePolicy
from jobs.model import Problem, RequestRejected, SchemaRef, SegmentDefinition, Strict, json_object, problems_from
from jobs.plan import Schemas
from jobs.pql import PqlError, parse, segment_references

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


class DefinitionRequest(Strict):
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


class DefinitionPatch(Strict):
    """The body of PATCH /segment/definitions/{id}: the fields to change."""

    name: str | None = Field(default=None, min_length=1)
    description: str | None = None
    expression: Expression | None = None
    merge_policy_id: str | None = Field(default=None, min_length=1)


def parse_request(body: str | bytes | dict[str, Any]) -> DefinitionRequest:
    try:
        return DefinitionRequest.model_validate(body if isinstance(body, dict) else json_object(body))
    except ValidationError as err:
        raise RequestRejected(problems_from(err)) from None


def parse_patch(body: str | bytes | dict[str, Any]) -> DefinitionPatch:
    try:
        patch = DefinitionPatch.model_validate(body if isinstance(body, dict) else json_object(body))
    except ValidationError as err:
        raise RequestRejected(problems_from(err)) from None
    if not patch.model_fields_set:
        raise RequestRejected([Problem(path="$", message="names nothing to change: send name, description, "
                                                        "expression or mergePolicyId")])
    return patch


def definition_policy(policy_id: str | None, config: Config) -> MergePolicy:
    """The merge policy a definition names (its latest version), or the default one."""
    if policy_id is None:
        return config.default_policy()
    policy = config.latest_policy(policy_id)
    if policy is None:
        declared = ", ".join(sorted({p.id for p in config.merge_policies}))
        raise RequestRejected([Problem(path="mergePolicyId",
                                       message=f"unknown merge policy {policy_id!r}; declared: {declared}")])
    return policy


def check_new_expression(definition_id: str, text: str, policy: MergePolicy, config: Config,
                         others: Mapping[str, SegmentDefinition]) -> None:
    """Reject an expression that does not fit, names unknown segments or closes an inSegment cycle.

    `others`: the scope's definitions other than this one, by id.
    """
    try:
        expr, _ = Schemas.of(policy, config).checked(text, set(others) | {definition_id})
        references = {d: [r.segment_id for r in segment_references(parse(o.pql))] for d, o in others.items()}
        for reference in segment_references(expr):
            cycle = _path_back(reference.segment_id, definition_id, references)
            if cycle is not None:
                chain = " → ".join([definition_id, *cycle])
                raise PqlError(text[reference.start:reference.end], reference.start,
                               f"makes a cycle of inSegment references: {chain}")
    except PqlError as err:
        raise RequestRejected([Problem(path="expression.value", message=str(err))]) from None


def _path_back(start: str, target: str, references: Mapping[str, list[str]]) -> list[str] | None:
    """The chain of inSegment references from `start` to `target`, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, chain = stack.pop()
        if node == target:
            return chain
        if node in seen:
            continue
        seen.add(node)
        stack.extend((ref, [*chain, ref]) for ref in references.get(node, ()))
    return None
