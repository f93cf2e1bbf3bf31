"""Reading the lake's input tables: each dataset keyed on its own, then one union."""

from __future__ import annotations

from collections.abc import Sequence

from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession


def read_delta(spark: SparkSession, path: str, missing_schema: str | None = None) -> DataFrame:
    """The Delta table at `path`; given `missing_schema`, a table that does not exist yet reads as
    empty rows of that schema (the segmentation dataset before its first write-back)."""
    if missing_schema is not None and not DeltaTable.is_deltatable(path):
        return spark.createDataFrame([], missing_schema)
    return spark.read.format("delta").load(path)


def union_all(frames: Sequence[DataFrame]) -> DataFrame:
    """The union by column name of frames that have the same columns."""
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return union
