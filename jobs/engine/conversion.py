"""A flat customer table as a profile dataset (docs/reference/your-lake.md#from-a-flat-table).

Most lakes keep customers as flat rows (`customer_id, email, first_name, ...`); a profile dataset is
XDM-shaped: an identityMap, an ingest time, and attributes nested by field path. `profile_fragments`
is the recipe, as a function a user applies before writing the table to Delta.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def profile_fragments(df: DataFrame, identities: Mapping[str, str], primary: str,
                      attributes: Mapping[str, str] | None = None, ingest_time: str | None = None) -> DataFrame:
    """One profile fragment per row of a flat table.

    `identities`: namespace -> the column holding that identity, e.g. {"crmId": "customer_id",
    "email": "email"}; a null value is left out. `primary`: the namespace that keys the profile (each
    row must have it). `attributes`: XDM field path -> column, e.g. {"person.name.firstName":
    "first_name"}, nested by its dots. `ingest_time`: the column that says when the row was loaded
    (the merge's "latest" under timestampOrdered); by default, now.
    """
    if primary not in identities:
        raise ValueError(f"primary namespace {primary!r} is not one of the identities {sorted(identities)}")
    entries = [
        F.when(F.col(column).isNotNull(), F.struct(
            F.lit(namespace).alias("key"),
            F.array(F.struct(F.col(column).cast("string").alias("id"),
                             F.lit(namespace == primary).alias("primary"))).alias("value"),
        ))
        for namespace, column in identities.items()
    ]
    identity_map = F.map_from_entries(F.filter(F.array(*entries), lambda entry: entry.isNotNull()))
    ingested = F.col(ingest_time).cast("timestamp") if ingest_time else F.current_timestamp()
    return df.select(identity_map.alias("identityMap"), ingested.alias("_ingestTime"),
                     *_nested(_tree(attributes or {})))


def _tree(attributes: Mapping[str, str]) -> dict[str, Any]:
    """{"person.name.firstName": "first_name"} -> {"person": {"name": {"firstName": "first_name"}}}"""
    tree: dict[str, Any] = {}
    for path, column in attributes.items():
        *parents, leaf = path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"attribute {path!r} nests under {part!r}, which is mapped to a column itself")
        if leaf in node:
            raise ValueError(f"attribute {path!r} is mapped twice")
        node[leaf] = column
    return tree


def _nested(tree: dict[str, Any]) -> list[Column]:
    return [(F.struct(*_nested(value)) if isinstance(value, dict) else F.col(value)).alias(name)
            for name, value in tree.items()]
