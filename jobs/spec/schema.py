"""Lake schemas without Spark: union of dataset schemas and the projection tree.

Types are Delta's JSON schema (the same JSON as Spark's `StructType.jsonValue()`):
a type is a name such as "string", or a dict with "type" struct, array or map.
Reading them with the deltalake package keeps job creation free of a JVM.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeGuard

from jobs.spec.errors import LakeError, did_you_mean

JsonType = str | dict[str, Any]

# Columns with a meaning of their own (identities, ingest time, memberships); all others are attributes.
SYSTEM_COLUMNS = ("identityMap", "_ingestTime", "segmentMembership")
EVENT_SYSTEM_COLUMNS = ("identityMap",)


class SchemaConflict(LakeError):
    """Two datasets declare one column with incompatible types."""


class UnknownPath(LakeError):
    """A requested field path that the merged schema does not have; `each`: every such path of the
    request, so that all of them are reported at once."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.each: list[UnknownPath] = [self]
        super().__init__(f"{path!r} {reason}")


def read_delta_schema(path: str) -> dict[str, Any] | None:
    """The struct JSON schema of the Delta table at `path`, or None if there is none."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(path):
        return None
    return json.loads(DeltaTable(path).schema().to_json())


def input_shape_problems(kind: str, schema: dict[str, Any]) -> list[str]:
    """What is wrong with the system columns of a profile or event dataset's table (`kind`), one
    sentence per column naming what was expected (docs/reference/your-lake.md#the-tables)."""
    columns = fields_of(schema)
    problems = []
    for name, (expected, check, required) in _SYSTEM_SHAPES[kind].items():
        if name not in columns:
            if required:
                problems.append(f"has no column {name} (expected {expected})")
        elif not check(columns[name]):
            problems.append(f"column {name} is {type_text(columns[name])}, expected {expected}")
    return problems


def _field(t: JsonType | None, name: str) -> JsonType | None:
    return fields_of(t).get(name) if t is not None and is_struct(t) else None


def _is_identity_map(t: JsonType) -> bool:
    """map<string, array<struct<id: string, primary: boolean (optional), ...>>>"""
    if not (isinstance(t, dict) and t.get("type") == "map" and t.get("keyType") == "string"):
        return False
    value = t.get("valueType")
    entry = value.get("elementType") if value is not None and is_array(value) else None
    return _field(entry, "id") == "string" and _field(entry, "primary") in {None, "boolean"}


def _is_memberships(t: JsonType) -> bool:
    """map<string, map<string, struct<status: string, ...>>>"""
    if not (isinstance(t, dict) and t.get("type") == "map" and t.get("keyType") == "string"):
        return False
    inner = t.get("valueType")
    return (isinstance(inner, dict) and inner.get("type") == "map" and inner.get("keyType") == "string"
            and _field(inner.get("valueType"), "status") == "string")


IDENTITY_MAP_TEXT = "map<string, array<struct<id: string, primary: boolean, ...>>>"
# Per kind of dataset: column -> (what is expected, in words; its check; whether it must be there).
_SYSTEM_SHAPES: dict[str, dict[str, tuple[str, Callable[[JsonType], bool], bool]]] = {
    "profile": {
        "identityMap": (IDENTITY_MAP_TEXT, _is_identity_map, True),
        "_ingestTime": ("timestamp", lambda t: t == "timestamp", True),
        "segmentMembership": ("map<string, map<string, struct<status: string, lastQualificationTime: timestamp, "
                              "...>>> (namespace -> segment id -> membership)", _is_memberships, False),
    },
    "event": {
        "identityMap": (IDENTITY_MAP_TEXT, _is_identity_map, True),
        "_ingestTime": ("timestamp", lambda t: t == "timestamp", True),
        "timestamp": ("timestamp", lambda t: t == "timestamp", False),
    },
}


def is_struct(t: JsonType) -> TypeGuard[dict[str, Any]]:
    return isinstance(t, dict) and t.get("type") == "struct"


def is_array(t: JsonType) -> TypeGuard[dict[str, Any]]:
    return isinstance(t, dict) and t.get("type") == "array"


def innermost_element(t: JsonType) -> JsonType:
    """The element type of an array of arrays … of it; `t` itself if it is no array."""
    while is_array(t):
        t = t["elementType"]
    return t


def type_at(struct: dict[str, Any], path: tuple[str, ...]) -> JsonType | None:
    """The type at a nested path of a struct schema, or None if there is no such field."""
    t: JsonType = struct
    for name in path:
        if not is_struct(t) or name not in fields_of(t):
            return None
        t = fields_of(t)[name]
    return t


def fields_of(struct: dict[str, Any]) -> dict[str, JsonType]:
    return {f["name"]: f["type"] for f in struct["fields"]}


def struct_of(fields: dict[str, JsonType]) -> dict[str, Any]:
    return {
        "type": "struct",
        "fields": [{"name": n, "type": t, "nullable": True, "metadata": {}} for n, t in fields.items()],
    }


def type_text(t: JsonType) -> str:
    if isinstance(t, str):
        return t
    if t["type"] == "struct":
        return "struct<" + ",".join(f"{n}:{type_text(s)}" for n, s in fields_of(t).items()) + ">"
    if t["type"] == "array":
        return f"array<{type_text(t['elementType'])}>"
    return f"map<{type_text(t['keyType'])},{type_text(t['valueType'])}>"


def _union_type(a: JsonType, b: JsonType, column: str) -> JsonType:
    if is_struct(a) and is_struct(b):
        return struct_of(_union_fields(fields_of(a), fields_of(b), column + "."))
    if is_array(a) and is_array(b):
        element = _union_type(a["elementType"], b["elementType"], column)
        return {"type": "array", "elementType": element, "containsNull": True}
    if isinstance(a, dict) and isinstance(b, dict) and a["type"] == b["type"] == "map":
        key = _union_type(a["keyType"], b["keyType"], column)
        value = _union_type(a["valueType"], b["valueType"], column)
        return {"type": "map", "keyType": key, "valueType": value, "valueContainsNull": True}
    if a == b:
        return a
    raise SchemaConflict(f"{column}: {type_text(a)} vs {type_text(b)}")


def _union_fields(a: dict[str, JsonType], b: dict[str, JsonType], prefix: str) -> dict[str, JsonType]:
    merged = dict(a)
    for name, t in b.items():
        merged[name] = _union_type(merged[name], t, prefix + name) if name in merged else t
    return merged


def _conflicting(earlier: list[tuple[str, dict[str, Any]]], name: str, t: JsonType) -> str:
    """The first earlier dataset whose column `name` cannot be united with type `t`."""
    for dataset_id, schema in earlier:
        other = fields_of(schema).get(name)
        if other is None:
            continue
        try:
            _union_type(other, t, name)
        except SchemaConflict:
            return dataset_id
    return earlier[0][0]


def union_schemas(schemas: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Union by name of (dataset id, struct schema) pairs; a type conflict names both datasets."""
    merged: dict[str, JsonType] = {}
    for n, (dataset_id, schema) in enumerate(schemas):
        for name, t in fields_of(schema).items():
            if name not in merged:
                merged[name] = t
                continue
            try:
                merged[name] = _union_type(merged[name], t, name)
            except SchemaConflict as err:
                raise SchemaConflict(
                    f"column {err} in datasets {_conflicting(schemas[:n], name, t)!r} and {dataset_id!r}"
                ) from None
    return struct_of(merged)


# ---------------------------------------------------------------- projection


@dataclass(frozen=True)
class Node:
    """One output column or nested field.

    kind "value": the whole value; "struct": a struct of `children`;
    "array": an array of structs whose elements keep only `children`.
    At the top of the tree a value or array node is one merged leaf attribute.
    """

    name: str
    kind: str
    type: JsonType
    children: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Leaf:
    """An attribute merged as one value: a non-struct at `path` of the profile."""

    path: tuple[str, ...]
    type: JsonType

    @property
    def column(self) -> str:
        return leaf_column(self.path)


def leaf_column(path: tuple[str, ...]) -> str:
    """The merged column of the leaf attribute at `path`."""
    return "__" + "__".join(path)


def _leaf_paths(t: JsonType, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    if is_struct(t):
        for name, sub in fields_of(t).items():
            yield from _leaf_paths(sub, prefix + (name,))
    else:
        yield prefix


def _select(selection: dict, struct: dict[str, Any], path: tuple[str, ...], full: str) -> None:
    """Record `path` in `selection` (name -> True for whole, or a nested dict)."""
    name, rest = path[0], path[1:]
    fields = fields_of(struct)
    if name not in fields:
        raise UnknownPath(full, f"does not exist in the profile schema: no field {name!r} here"
                                + did_you_mean(name, fields))
    t = fields[name]
    if is_struct(t):
        if selection.get(name) is True:
            return
        inner = selection.setdefault(name, {})
        targets = [rest] if rest else list(_leaf_paths(t, ()))
        for sub in targets:
            _select(inner, t, sub, full)
        return
    if not rest:
        selection[name] = True
        return
    element = innermost_element(t)
    if not (is_array(t) and is_struct(element)):
        raise UnknownPath(full, f"goes below {name!r}, which is a {type_text(t)} with no fields")
    if selection.get(name) is True:
        return
    _select(selection.setdefault(name, {}), element, rest, full)


def _nodes(selection: dict, struct: dict[str, Any]) -> tuple[Node, ...]:
    fields = fields_of(struct)
    nodes = []
    for name, sel in selection.items():
        t = fields[name]
        if sel is True:
            nodes.append(Node(name, "value", t))
        elif is_struct(t):
            nodes.append(Node(name, "struct", t, _nodes(sel, t)))
        else:
            element = innermost_element(t)
            assert is_struct(element), "_select keeps only arrays of structs"
            nodes.append(Node(name, "array", t, _nodes(sel, element)))
    return tuple(nodes)


def attribute_schema(schema: dict[str, Any], system: tuple[str, ...] = SYSTEM_COLUMNS) -> dict[str, Any]:
    return struct_of({n: t for n, t in fields_of(schema).items() if n not in system})


def projection(
    schema: dict[str, Any],
    paths: list[tuple[str, ...]] | None,
    system: tuple[str, ...] = SYSTEM_COLUMNS,
) -> tuple[Node, ...]:
    """The output tree for `paths` (None: every attribute), validated against `schema`.

    `system` columns are exported anyway (profiles) or never (an event's identityMap).
    """
    attributes = attribute_schema(schema, system)
    selection: dict = {}
    wanted = list(_leaf_paths(attributes, ())) if paths is None else paths
    unknown: list[UnknownPath] = []
    for path in wanted:
        if path[0] in system:
            continue  # naming them in fields is harmless
        try:
            _select(selection, attributes, path, ".".join(path))
        except UnknownPath as err:
            unknown.append(err)
    if unknown:
        unknown[0].each = unknown
        raise unknown[0]
    return _nodes(selection, attributes)


def merge_leaves(nodes: tuple[Node, ...], prefix: tuple[str, ...] = ()) -> list[Leaf]:
    """The attributes a projection needs merged, each once."""
    leaves = []
    for node in nodes:
        path = prefix + (node.name,)
        if node.kind == "struct":
            leaves.extend(merge_leaves(node.children, path))
        else:
            leaves.append(Leaf(path, node.type))
    return leaves
