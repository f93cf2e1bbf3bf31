"""The requested `fields` as one `select`, keeping XDM nesting (docs/reference/job-definition.md#fields).

The merge yields one flat column per leaf attribute; the projection rebuilds
only the requested structs from them. A struct whose fields are all null is
null, as it would be in the source. Arrays of structs keep only the requested
element fields (`identities.id` → `identities: array<struct<id>>`).
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.spec import Leaf, Node, is_array


def _struct(fields: list[Column], names: list[str]) -> Column:
    present = F.lit(False)
    for field in fields:
        present = present | field.isNotNull()
    return F.when(present, F.struct(*[f.alias(n) for f, n in zip(fields, names, strict=True)]))


def project(node: Node, value: Column) -> Column:
    """`value` (the column or field a node names) reduced to the node's selection."""
    if node.kind == "value":
        return value
    if node.kind == "struct":
        return _struct([project(c, value[c.name]) for c in node.children], [c.name for c in node.children])
    return _array(node, value)


def _array(node: Node, value: Column) -> Column:
    assert is_array(node.type), "an array node has an array type"
    element_type = node.type["elementType"]
    depth = 0
    while is_array(element_type):
        element_type, depth = element_type["elementType"], depth + 1

    def element(x: Column, level: int) -> Column:
        if level:
            return F.transform(x, lambda y: element(y, level - 1))
        return _struct([project(c, x[c.name]) for c in node.children], [c.name for c in node.children])

    return F.transform(value, lambda x: element(x, depth))


def _top(node: Node, prefix: tuple[str, ...]) -> Column:
    path = prefix + (node.name,)
    if node.kind == "struct":
        return _struct([_top(c, path) for c in node.children], [c.name for c in node.children])
    leaf = F.col(Leaf(path, node.type).column)
    return leaf if node.kind == "value" else _array(node, leaf)


def projected_columns(nodes: tuple[Node, ...]) -> list[Column]:
    """One output column per top-level node, from the merged leaf columns."""
    return [_top(node, ()).alias(node.name) for node in nodes]
