"""Reading the lake's input tables: each dataset keyed on its own, then one union."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from pyspark.sql import DataFrame, SparkSession

Source = TypeVar("Source")


def read_sources(spark: SparkSession, sources: Sequence[Source], path_of: Callable[[Source], str],
                 keyed: Callable[[DataFrame, Source], DataFrame]) -> DataFrame:
    """The union by name of `keyed(table, source)` over the sources' Delta tables."""
    return union_all([keyed(spark.read.format("delta").load(path_of(s)), s) for s in sources])


def union_all(frames: Sequence[DataFrame]) -> DataFrame:
    """The union by column name of frames that have the same columns."""
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return union
