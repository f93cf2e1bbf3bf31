"""Delta JSON types as Spark types, and one dataset's columns as the merged schema's types.

Datasets of one kind may differ in their columns and nested fields; the merged
schema is their union by name (jobs.spec.schema), and every dataset's rows are read
as that union, with nulls where a dataset lacks a field.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DataType, MapType, StructType

from jobs.spec import JsonType


def spark_type(t: JsonType) -> DataType:
    wrapper = {"type": "struct", "fields": [{"name": "v", "type": t, "nullable": True, "metadata": {}}]}
    return StructType.fromJson(wrapper).fields[0].dataType


def conform(col: Column, have: DataType, want: DataType) -> Column:
    """`col` of type `have` as type `want`, filling fields that `have` lacks with nulls."""
    if have.simpleString() == want.simpleString():
        return col
    if isinstance(have, StructType) and isinstance(want, StructType):
        present = {f.name: f.dataType for f in have.fields}
        fields = [
            (conform(col[f.name], present[f.name], f.dataType) if f.name in present
             else F.lit(None).cast(f.dataType)).alias(f.name)
            for f in want.fields
        ]
        return F.when(col.isNotNull(), F.struct(*fields))
    if isinstance(have, ArrayType) and isinstance(want, ArrayType):
        return F.transform(col, lambda x: conform(x, have.elementType, want.elementType))
    if isinstance(have, MapType) and isinstance(want, MapType):
        return F.transform_values(col, lambda _, v: conform(v, have.valueType, want.valueType))
    return col.cast(want)


def column_as(df: DataFrame, path: tuple[str, ...], want: JsonType) -> Column:
    """The value at a nested path of df as type `want`: null where df lacks the path."""
    target = spark_type(want)
    t: DataType = df.schema
    col: Column | None = None
    for name in path:
        if not isinstance(t, StructType) or name not in t.fieldNames():
            return F.lit(None).cast(target)
        col = F.col(name) if col is None else col[name]
        t = t[name].dataType
    assert col is not None, "a path names at least one column"
    return conform(col, t, target)
