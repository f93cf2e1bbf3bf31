"""The I/O floor: plain Spark reading the fragment tables and writing the same columns, no merge, no filter."""

from __future__ import annotations

import time
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.lake import Lake, table_stats
from benchmarks.rounds import Sample
from benchmarks.settings import FIELDS
from jobs.engine import project
from jobs.spec import parse_field_list, projection


def floor_frame(spark: SparkSession, path: str) -> DataFrame:
    """One fragment table's identityMap, segmentMembership and requested fields, as stored."""
    df = spark.read.format("delta").load(path)
    paths = [p for p in parse_field_list(FIELDS) if p[0] in df.columns]
    nodes = projection(df.schema.jsonValue(), paths)
    return df.select("identityMap", "segmentMembership", *[project(n, df[n.name]).alias(n.name) for n in nodes])


def run_floor(spark: SparkSession, lake: Lake, name: str) -> Sample:

    destination = str(lake.root / "runs" / name)
    started = time.perf_counter()
    frames = [floor_frame(spark, path) for path in lake.profile_paths]
    rows = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
    rows.withColumn("_batchId", F.lit("floor")).write.format("delta").mode("append").save(destination)
    seconds = time.perf_counter() - started
    return Sample(seconds, table_stats(destination)[0], destination)


def run_events_floor(spark: SparkSession, lake: Lake, name: str) -> Sample:
    """The events floor: plain Spark reading every event, grouping them by their first identity and
    writing one row per key with its events' exported fields in time order, as our event list has them."""
    destination = str(lake.root / "runs" / name)
    started = time.perf_counter()
    frames = []
    for path in lake.event_paths:
        df = spark.read.format("delta").load(path)
        first = F.map_entries("identityMap")[0]
        event = F.struct(F.col("timestamp").alias("t"), F.col("_id").alias("id"),
                         F.struct("_id", "timestamp", F.col("web.webPageDetails.URL").alias("URL")).alias("value"))
        frames.append(df.select(first["key"].alias("ns"), first["value"][0]["id"].alias("id"), event.alias("event")))
    events = reduce(lambda a, b: a.unionByName(b), frames)
    rows = events.groupBy("ns", "id").agg(F.sort_array(F.collect_list("event"))["value"].alias("events"))
    rows.write.format("delta").mode("append").save(destination)
    seconds = time.perf_counter() - started
    return Sample(seconds, table_stats(destination)[0], destination)
