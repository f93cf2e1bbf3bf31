"""Reading the lake's input tables: each dataset keyed on its own, then one union."""

from __future__ import annotations

from collections.abc import Sequence

from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from jobs.engine.columns import SEGMENTATION_SCHEMA
from jobs.planner import EventSource, ProfileSource


def read_source(spark: SparkSession, source: ProfileSource | EventSource) -> DataFrame:
    """A source's Delta table at the version the job reads; an optional profile source with no
    table yet (the segmentation dataset before its first write-back) reads as empty rows."""
    if isinstance(source, ProfileSource) and source.optional and not DeltaTable.is_deltatable(source.path):
        return spark.createDataFrame([], SEGMENTATION_SCHEMA)
    reader = spark.read.format("delta")
    if source.version is not None:
        reader = reader.option("versionAsOf", source.version)
    return reader.load(source.path)


def union_all(frames: Sequence[DataFrame]) -> DataFrame:
    """The union by column name of frames that have the same columns."""
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return union
