"""Segment definitions: the checks that make one acceptable, the `segmentTable`, and the operations
the shells call on it (docs/reference/segments.md).

A definition is checked when it is created or changed: its PQL expression must
parse, fit the merged profile schema of its merge policy (and the event schema
under `xEvent[...]`), and name in `inSegment` only segments that exist, without a
cycle. Every problem is a `Problem` with its JSON path (`expression.value`, ...).

The table is one Delta table (a `DeltaRows` table, delta-rs) with one current row
per definition, scoped like jobs to an org and sandbox. Every operation validates
first and writes nothing for a rejected request; a change is a conditional commit
on the row's `updateTime`, so two concurrent changes of one definition cannot both win.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake

from jobs.control.pages import SEGMENT_CURSOR, cursor_page
from jobs.control.tables import DeltaRows, all_of, before, equal, literal, retry_commits, tenant
from jobs.planner import Schemas
from jobs.spec import (
    Config,
    Conflict,
    ExpressionCheck,
    ExpressionVerdict,
    MergePolicy,
    NotFound,
    PqlProblem,
    RequestRejected,
    SegmentDefinition,
    SegmentPatch,
    SegmentRequest,
    now_ms,
    parse_patch,
    pql,
)

SEGMENT_TABLE_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("imsOrgId", pa.string()),
    ("sandboxName", pa.string()),
    ("name", pa.string()),
    ("creationTime", pa.int64()),
    ("updateTime", pa.int64()),
    ("record", pa.string()),
])


# ---------------------------------------------------------------- checks


def definition_policy(policy_id: str | None, config: Config) -> MergePolicy:
    """The merge policy a definition names (its latest version), or the default one."""
    if policy_id is None:
        return config.default_policy()
    policy = config.latest_policy(policy_id)
    if policy is None:
        declared = ", ".join(sorted({p.id for p in config.merge_policies}))
        raise RequestRejected.at("mergePolicyId", f"unknown merge policy {policy_id!r}; declared: {declared}")
    return policy


def check_new_expression(definition_id: str, text: str, policy: MergePolicy, config: Config,
                         others: Mapping[str, SegmentDefinition]) -> None:
    """Reject an expression that does not fit, names unknown segments or closes an inSegment cycle.

    `others`: the scope's definitions other than this one, by id.
    """
    try:
        _check_expression(definition_id, text, policy, config, others)
    except pql.PqlError as err:
        raise RequestRejected.at("expression.value", str(err)) from None


def _check_expression(definition_id: str, text: str, policy: MergePolicy, config: Config,
                      others: Mapping[str, SegmentDefinition]) -> None:
    """check_new_expression's checks; raises PqlError, which knows the problem's place in `text`."""
    pql.check_size(text, config.limits.pql_length, config.limits.pql_nesting)
    expr, _ = Schemas.of(policy, config).checked(text, set(others) | {definition_id})
    references = {d: [r.segment_id for r in pql.segment_references(pql.parse(o.pql))] for d, o in others.items()}
    for reference in pql.segment_references(expr):
        cycle = _path_back(reference.segment_id, definition_id, references)
        if cycle is not None:
            chain = " → ".join([definition_id, *cycle])
            raise pql.PqlError(text[reference.start:reference.end], reference.start,
                               f"makes a cycle of inSegment references: {chain}")


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


# ---------------------------------------------------------------- the table


class SegmentNotFound(NotFound):
    pass


class SegmentConflict(Conflict):
    """The change cannot be made now: the definition changed meanwhile, or others depend on it."""


class SegmentStore(DeltaRows):
    NAME = "definitions"

    def get(self, definition_id: str, org: str, sandbox: str) -> SegmentDefinition:
        where = all_of(equal("id", definition_id), tenant(org, sandbox))
        rows = self._query(f"SELECT record FROM definitions WHERE {where}")
        if not rows:
            raise SegmentNotFound(f"no segment definition {definition_id}")
        return SegmentDefinition.model_validate_json(rows[0]["record"])

    def all(self, org: str, sandbox: str) -> dict[str, SegmentDefinition]:
        """Every definition of the scope, by id."""
        rows = self._query(f"SELECT record FROM definitions WHERE {tenant(org, sandbox)}")
        found = [SegmentDefinition.model_validate_json(r["record"]) for r in rows]
        return {d.id: d for d in found}

    def page(self, org: str, sandbox: str, limit: int, after: tuple[int, str] | None = None
             ) -> builtins.list[SegmentDefinition]:
        """Newest first; `after` is the (creationTime, id) of the last definition already seen."""
        where = all_of(tenant(org, sandbox), before(*after) if after else None)
        rows = self._query(f"SELECT record FROM definitions WHERE {where} "
                           f"ORDER BY creationTime DESC, id DESC LIMIT {int(limit)}")
        return [SegmentDefinition.model_validate_json(r["record"]) for r in rows]

    def add(self, definition: SegmentDefinition) -> SegmentDefinition:
        rows = pa.Table.from_pylist([_row(definition)], schema=SEGMENT_TABLE_SCHEMA)
        with self._lock:
            retry_commits(lambda: write_deltalake(self.path, rows, mode="append"))
        return definition

    def replace(self, definition: SegmentDefinition, expected_update: int) -> SegmentDefinition:
        row = _row(definition)
        updates = {column: literal(row[column]) for column in ("name", "updateTime", "record")}
        predicate = all_of(equal("id", definition.id), equal("updateTime", int(expected_update)))
        if self._update(updates, predicate) != 1:
            raise SegmentConflict(f"segment definition {definition.id} changed meanwhile: get it and try again")
        return definition

    def delete(self, definition_id: str, org: str, sandbox: str) -> bool:
        predicate = all_of(equal("id", definition_id), tenant(org, sandbox))

        def attempt() -> int:
            table = self._table()
            return 0 if table is None else table.delete(predicate)["num_deleted_rows"]

        with self._lock:
            return retry_commits(attempt) == 1


def _row(definition: SegmentDefinition) -> dict[str, Any]:
    return {"id": definition.id, "imsOrgId": definition.ims_org_id, "sandboxName": definition.sandbox_name,
            "name": definition.name, "creationTime": definition.creation_time,
            "updateTime": definition.update_time, "record": definition.to_json()}


# ---------------------------------------------------------------- operations


def create_segment(store: SegmentStore, config: Config, body: str | bytes | dict[str, Any],
                   org: str, sandbox: str) -> SegmentDefinition:
    """Validate a definition and store it with a new id; raises RequestRejected (nothing stored)."""
    request = SegmentRequest.parse(body)
    config = config.for_tenant(org, sandbox)
    policy = definition_policy(request.merge_policy_id, config)
    definition_id = str(uuid.uuid4())
    others = store.all(org, sandbox)
    if len(others) >= config.limits.definitions_per_tenant:
        raise RequestRejected.at("$", f"this org and sandbox have {len(others)} segment definitions, the most "
                                      "limits.definitionsPerTenant allows: delete some first")
    check_new_expression(definition_id, request.expression.value, policy, config, others)
    created = now_ms()
    definition = store.add(SegmentDefinition(
        id=definition_id, name=request.name, description=request.description,
        expression=request.expression, merge_policy_id=policy.id, schema_=request.schema_,
        ims_org_id=org, sandbox_name=sandbox, creation_time=created, update_time=created,
    ))
    if not _references_hold(store, definition):
        store.delete(definition_id, org, sandbox)
        raise SegmentConflict("a segment definition this one names in inSegment was deleted meanwhile: try again")
    return definition


def validate_expression(store: SegmentStore, config: Config, body: str | bytes | dict[str, Any],
                        org: str, sandbox: str) -> ExpressionVerdict:
    """Check an expression as create or update would, without storing anything: its problem at its line
    and column (an editor marks it there). A bad body or merge policy raises RequestRejected."""
    request = ExpressionCheck.parse(body)
    config = config.for_tenant(org, sandbox)
    policy = definition_policy(request.merge_policy_id, config)
    definition_id = request.id or str(uuid.uuid4())
    others = {d: o for d, o in store.all(org, sandbox).items() if d != definition_id}
    text = request.expression.value
    try:
        _check_expression(definition_id, text, policy, config, others)
    except pql.PqlError as err:
        return ExpressionVerdict(valid=False, errors=[PqlProblem.of(text, err)])
    return ExpressionVerdict(valid=True, errors=[])


def update_segment(store: SegmentStore, config: Config, definition_id: str,
                   body: str | bytes | dict[str, Any], org: str, sandbox: str) -> SegmentDefinition:
    """Change the fields a partial body names, validated as a new definition would be."""
    patch: SegmentPatch = parse_patch(body)
    config = config.for_tenant(org, sandbox)
    current = store.get(definition_id, org, sandbox)
    changes: dict[str, Any] = {"update_time": max(now_ms(), current.update_time + 1)}
    if "name" in patch.model_fields_set and patch.name is not None:
        changes["name"] = patch.name
    if "description" in patch.model_fields_set:
        changes["description"] = patch.description
    if patch.expression is not None:
        changes["expression"] = patch.expression
    if patch.merge_policy_id is not None:
        changes["merge_policy_id"] = definition_policy(patch.merge_policy_id, config).id
    updated = current.updated(**changes)
    others = {i: d for i, d in store.all(org, sandbox).items() if i != definition_id}
    check_new_expression(definition_id, updated.pql, definition_policy(updated.merge_policy_id, config), config,
                         others)
    store.replace(updated, current.update_time)
    if not _references_hold(store, updated):
        store.replace(current.updated(update_time=updated.update_time + 1), updated.update_time)
        raise SegmentConflict(f"segment definition {definition_id} was not changed: the definitions it names in "
                              "inSegment changed meanwhile (deleted, or made to name it): get them and try again")
    return updated


def _references_hold(store: SegmentStore, definition: SegmentDefinition) -> bool:
    """After a write, read again: every definition this one names in inSegment exists, and no chain of
    references leads back to it. Writers each validate against what they read before they write, so
    two concurrent writes (A made to name B, B made to name A; a definition named while it is deleted)
    can each pass; each then sees the other here, and undoes its own write."""
    scope = store.all(definition.ims_org_id, definition.sandbox_name)
    references = {i: [r.segment_id for r in pql.segment_references(pql.parse(d.pql))] for i, d in scope.items()}
    named = references.get(definition.id, [])
    return all(n in scope for n in named) and all(_path_back(n, definition.id, references) is None for n in named)


def delete_segment(store: SegmentStore, definition_id: str, org: str, sandbox: str,
                   evaluated_by: Iterable[str] = ()) -> None:
    """Delete a definition that nothing uses: no other definition names it in inSegment, and
    nothing in `evaluated_by` (schedules.evaluations_of: the schedules and unfinished jobs that
    evaluate it) would evaluate it."""
    store.get(definition_id, org, sandbox)
    users = [f"segment definition {name}" for name in sorted(
        d.name for d in store.all(org, sandbox).values()
        if any(r.segment_id == definition_id for r in pql.segment_references(pql.parse(d.pql))))]
    users += evaluated_by
    if users:
        raise SegmentConflict(f"segment definition {definition_id} is used by {', '.join(users)}: "
                              "change or delete those first")
    if not store.delete(definition_id, org, sandbox):
        raise SegmentNotFound(f"no segment definition {definition_id}")


def list_segments(store: SegmentStore, org: str, sandbox: str, limit: int = 50,
                  offset: str | None = None) -> dict[str, Any]:
    """A page of definitions, newest first, shaped as AEP's list: segments, page, link.next."""
    after = SEGMENT_CURSOR.decode(offset) if offset else None
    found = store.page(org, sandbox, limit + 1, after)
    return cursor_page("segments", found, limit, offset, SEGMENT_CURSOR, "/segment/definitions")
