"""The segment definitions table (`segmentTable`) and the operations the shells call on it.

One Delta table (a `DeltaRows` table, delta-rs) with one current row per
definition, scoped like jobs to an org and sandbox. Every operation validates
first (jobs.definitions) and writes nothing for a rejected request; a change is
a conditional commit on the row's `updateTime`, so two concurrent changes of one
definition cannot both win.
"""

from __future__ import annotations

import builtins
import re
import uuid
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake

from jobs.clock import now_ms
from jobs.config import Config
from jobs.definitions import (
    DefinitionPatch,
    check_new_expression,
    definition_policy,
    parse_patch,
    parse_request,
)
from jobs.model import SegmentDefinition
from jobs.pql import parse, segment_references
from jobs.tables import DeltaRows, retry_commits, sql_text

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("imsOrgId", pa.string()),
    ("sandboxName", pa.string()),
    ("name", pa.string()),
    ("creationTime", pa.int64()),
    ("updateTime", pa.int64()),
    ("record", pa.string()),
])


class DefinitionNotFound(Exception):
    pass


class DefinitionConflict(Exception):
    """The change cannot be made now: the definition changed meanwhile, or others depend on it."""


class DefinitionStore(DeltaRows):
    NAME = "definitions"

    def _scope(self, org: str, sandbox: str) -> str:
        return f"imsOrgId = {sql_text(org)} AND sandboxName = {sql_text(sandbox)}"

    def get(self, definition_id: str, org: str, sandbox: str) -> SegmentDefinition:
        rows = self._query(f"SELECT record FROM definitions WHERE id = {sql_text(definition_id)} "
                           f"AND {self._scope(org, sandbox)}")
        if not rows:
            raise DefinitionNotFound(f"no segment definition {definition_id}")
        return SegmentDefinition.model_validate_json(rows[0]["record"])

    def all(self, org: str, sandbox: str) -> dict[str, SegmentDefinition]:
        """Every definition of the scope, by id."""
        rows = self._query(f"SELECT record FROM definitions WHERE {self._scope(org, sandbox)}")
        found = [SegmentDefinition.model_validate_json(r["record"]) for r in rows]
        return {d.id: d for d in found}

    def page(self, org: str, sandbox: str, limit: int, before: tuple[int, str] | None = None
             ) -> builtins.list[SegmentDefinition]:
        """Newest first; `before` is the (creationTime, id) of the last definition already seen."""
        where = self._scope(org, sandbox)
        if before is not None:
            created, last = before
            where += f" AND (creationTime < {created} OR (creationTime = {created} AND id < {sql_text(last)}))"
        rows = self._query(f"SELECT record FROM definitions WHERE {where} "
                           f"ORDER BY creationTime DESC, id DESC LIMIT {int(limit)}")
        return [SegmentDefinition.model_validate_json(r["record"]) for r in rows]

    def add(self, definition: SegmentDefinition) -> SegmentDefinition:
        rows = pa.Table.from_pylist([_row(definition)], schema=SCHEMA)
        with self._lock:
            retry_commits(lambda: write_deltalake(self.path, rows, mode="append"))
        return definition

    def replace(self, definition: SegmentDefinition, expected_update: int) -> SegmentDefinition:
        row = _row(definition)
        updates = {"name": sql_text(row["name"]), "updateTime": str(row["updateTime"]),
                   "record": sql_text(row["record"])}
        predicate = f"id = {sql_text(definition.id)} AND updateTime = {int(expected_update)}"
        if self._update(updates, predicate) != 1:
            raise DefinitionConflict(f"segment definition {definition.id} changed meanwhile: get it and try again")
        return definition

    def delete(self, definition_id: str, org: str, sandbox: str) -> bool:
        predicate = f"id = {sql_text(definition_id)} AND {self._scope(org, sandbox)}"

        def attempt() -> int:
            table = self._table()
            return 0 if table is None else table.delete(predicate)["num_deleted_rows"]

        with self._lock:
            return retry_commits(attempt) == 1


def _row(definition: SegmentDefinition) -> dict[str, Any]:
    return {"id": definition.id, "imsOrgId": definition.ims_org_id, "sandboxName": definition.sandbox_name,
            "name": definition.name, "creationTime": definition.creation_time,
            "updateTime": definition.update_time, "record": definition.model_dump_json(by_alias=True,
                                                                                     exclude_none=True)}


# ---------------------------------------------------------------- operations


def create_definition(store: DefinitionStore, config: Config, body: str | bytes | dict[str, Any],
                      org: str, sandbox: str) -> SegmentDefinition:
    """Validate a definition and store it with a new id; raises RequestRejected (nothing stored)."""
    request = parse_request(body)
    policy = definition_policy(request.merge_policy_id, config)
    definition_id = str(uuid.uuid4())
    check_new_expression(definition_id, request.expression.value, policy, config, store.all(org, sandbox))
    created = now_ms()
    return store.add(SegmentDefinition(
        id=definition_id, name=request.name, description=request.description,
        expression=request.expression.model_dump(by_alias=True), merge_policy_id=policy.id,
        schema_={"name": request.schema_.name}, ims_org_id=org, sandbox_name=sandbox,
        creation_time=created, update_time=created,
    ))


def update_definition(store: DefinitionStore, config: Config, definition_id: str,
                      body: str | bytes | dict[str, Any], org: str, sandbox: str) -> SegmentDefinition:
    """Change the fields a partial body names, validated as a new definition would be."""
    patch: DefinitionPatch = parse_patch(body)
    current = store.get(definition_id, org, sandbox)
    changes: dict[str, Any] = {"update_time": max(now_ms(), current.update_time + 1)}
    if "name" in patch.model_fields_set and patch.name is not None:
        changes["name"] = patch.name
    if "description" in patch.model_fields_set:
        changes["description"] = patch.description
    if patch.expression is not None:
        changes["expression"] = patch.expression.model_dump(by_alias=True)
    if patch.merge_policy_id is not None:
        changes["merge_policy_id"] = definition_policy(patch.merge_policy_id, config).id
    updated = current.model_copy(update=changes)
    others = {i: d for i, d in store.all(org, sandbox).items() if i != definition_id}
    check_new_expression(definition_id, updated.pql, definition_policy(updated.merge_policy_id, config), config,
                         others)
    return store.replace(updated, current.update_time)


def delete_definition(store: DefinitionStore, definition_id: str, org: str, sandbox: str) -> None:
    """Delete a definition that no other definition names in inSegment."""
    store.get(definition_id, org, sandbox)
    users = sorted(d.name for d in store.all(org, sandbox).values()
                   if any(r.segment_id == definition_id for r in segment_references(parse(d.pql))))
    if users:
        raise DefinitionConflict(f"segment definition {definition_id} is used by inSegment in {', '.join(users)}: "
                                 "change those first")
    if not store.delete(definition_id, org, sandbox):
        raise DefinitionNotFound(f"no segment definition {definition_id}")


def encode_cursor(definition: SegmentDefinition) -> str:
    return f"{definition.creation_time}_{definition.id}"


def decode_cursor(text: str) -> tuple[int, str]:
    """'{creationTime}_{id}' → (creationTime, id); ValueError names the bad value."""
    if not re.fullmatch(r"[0-9]{1,19}_[0-9a-f-]{1,64}", text):
        raise ValueError(f"offset {text!r} is not a cursor of the form {{creationTime}}_{{id}}")
    created, _, definition_id = text.partition("_")
    return int(created), definition_id


def list_definitions(store: DefinitionStore, org: str, sandbox: str, limit: int = 50,
                     offset: str | None = None) -> dict[str, Any]:
    """A page of definitions, newest first, shaped as AEP's list: segments, page, link.next."""
    before = decode_cursor(offset) if offset else None
    found = store.page(org, sandbox, limit + 1, before)
    page, more = found[:limit], len(found) > limit
    link = {"next": f"/segment/definitions?limit={limit}&offset={encode_cursor(page[-1])}"} if more and page else {}
    return {"segments": [d.to_dict() for d in page],
            "page": {"sortField": "creationTime", "sort": "desc", "pageOffset": offset, "pageSize": len(page)},
            "link": link}
