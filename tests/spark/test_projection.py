"""Projection keeps XDM nesting: structs, shared parents, arrays of structs."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql.types import StructField, StructType

from jobs.engine import projected_columns, spark_type
from jobs.spec import merge_leaves, parse_field_list, projection

pytestmark = pytest.mark.spark

PROFILE = (
    "person struct<name: struct<firstName: string, lastName: string>, birthYear: int>, "
    "personalEmail struct<address: string>, "
    "identities array<struct<id: string, namespace: string>>"
)


def project(spark, fields: str | None, leaf_rows: list[tuple]):
    """Project merged leaf rows (one value per leaf, in merge_leaves order)."""
    profile = spark.createDataFrame([], PROFILE).schema.jsonValue()
    nodes = projection(profile, parse_field_list(fields) if fields else None)
    leaves = merge_leaves(nodes)
    schema = StructType([StructField(leaf.column, spark_type(leaf.type)) for leaf in leaves])
    return spark.createDataFrame(leaf_rows, schema).select(*projected_columns(nodes)), [leaf.path for leaf in leaves]


def test_nested_struct_path_keeps_its_parents(spark):
    out, leaves = project(spark, "person.name.firstName", [("Ada",)])
    assert leaves == [("person", "name", "firstName")]
    expected = spark.createDataFrame([({"name": {"firstName": "Ada"}},)],
                                     "person struct<name: struct<firstName: string>>")
    assert_df_equality(out, expected, ignore_nullable=True)


def test_two_paths_under_one_parent_share_one_struct(spark):
    out, _ = project(spark, "person.name.firstName, person.birthYear , personalEmail.address",
                     [("Ada", 1815, "ada@x.org")])
    expected = spark.createDataFrame(
        [({"name": {"firstName": "Ada"}, "birthYear": 1815}, {"address": "ada@x.org"})],
        "person struct<name: struct<firstName: string>, birthYear: int>, personalEmail struct<address: string>",
    )
    assert_df_equality(out, expected, ignore_nullable=True)


def test_path_through_an_array_of_structs_keeps_the_array(spark):
    out, leaves = project(spark, "identities.id", [([("ecid-1", "ECID"), ("crm-1", "CRMID")],)])
    assert leaves == [("identities",)]
    expected = spark.createDataFrame([([("ecid-1",), ("crm-1",)],)], "identities array<struct<id: string>>")
    assert_df_equality(out, expected, ignore_nullable=True)


def test_struct_with_only_null_fields_is_null(spark):
    out, _ = project(spark, "person.name.firstName, personalEmail.address", [(None, "x@y.org")])
    expected = spark.createDataFrame(
        [(None, {"address": "x@y.org"})],
        "person struct<name: struct<firstName: string>>, personalEmail struct<address: string>",
    )
    assert_df_equality(out, expected, ignore_nullable=True)


def test_no_fields_exports_every_attribute_whole(spark):
    out, _ = project(spark, None, [("Ada", "Lovelace", 1815, "ada@x.org", [("e", "ECID")])])
    expected = spark.createDataFrame(
        [({"name": {"firstName": "Ada", "lastName": "Lovelace"}, "birthYear": 1815}, {"address": "ada@x.org"},
          [("e", "ECID")])],
        PROFILE,
    )
    assert_df_equality(out, expected, ignore_nullable=True)
