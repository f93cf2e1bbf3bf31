"""Our export jobs, created and run as a user's would be."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.lake import Lake
from benchmarks.memory import PeakMemory
from benchmarks.rounds import Sample, Scenario
from benchmarks.settings import CONSENT_FIELD, DESTINATION_ID, EVALUATED_SEGMENTS, EVENT_FIELDS, FIELDS, SCHEMA_NAME
from jobs.control import JobStore, SegmentStore, create_job, create_segment, run_job
from jobs.spec import Config, JobRecord, JobStatus
from sample_lake import segment_id

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def job_body(segments: int, per_segment: bool = False, events: bool = False, consent: bool = False) -> dict:
    body: dict[str, Any] = {
        "fields": FIELDS,
        "filter": {"segments": [{"segmentId": segment_id(i)} for i in range(segments)]},
        "destination": {"datasetId": DESTINATION_ID, "segmentPerBatch": per_segment},
        "schema": {"name": SCHEMA_NAME},
    }
    if events:
        body["additionalFields"] = {"eventList": {"fields": EVENT_FIELDS}}
    if consent:
        # A policy that every profile meets, so that the figure writes the same rows as the export
        # without it and measures what the check costs (merging the field, filtering, counting). The
        # engine applies a job's policy as it does a destination's.
        body["consent"] = {"field": CONSENT_FIELD, "allowedValues": ["y", "dy", "n"], "missing": "include"}
    return body


def evaluated_expressions() -> list[str]:
    """The evaluated segments: half on attributes only, half counting events in a 30-day window."""
    tiers = ("gold", "silver", "bronze")
    attributes = [
        f'loyalty.tier = "{tiers[i % 3]}" and person.birthYear >= {1950 + 4 * i}' if i % 2 == 0 else
        f'homeAddress.city in ["Paris", "Lyon"] and loyalty.points > {90 * i}'
        for i in range(EVALUATED_SEGMENTS // 2)
    ]
    events = []
    for i in range(EVALUATED_SEGMENTS - len(attributes)):
        first = date(2024, 1, 1) + timedelta(days=5 * i)
        last = first + timedelta(days=29)
        kind = "commerce.purchases" if i % 2 == 0 else "web.webpagedetails.pageViews"
        events.append(f'xEvent[eventType = "{kind}" and timestamp occurs between '
                      f"date({first.year}, {first.month}, {first.day}) and date({last.year}, {last.month}, {last.day})"
                      f"].count() >= {2 + i % 3}")
    return attributes + events


def define_segments(config: Config) -> list[str]:
    """The evaluated segments' definitions, stored in the lake's segment table; their ids."""
    store = SegmentStore(config.segment_table_path)
    return [create_segment(store, config, {
        "name": f"evaluated {n}", "expression": {"type": "PQL", "format": "pql/text", "value": value},
        "schema": {"name": SCHEMA_NAME}}, config.default_org, config.default_sandbox).id
        for n, value in enumerate(evaluated_expressions())]


def evaluated_segments_body(segment_ids: list[str]) -> dict[str, Any]:
    """The 20-segment combined export of the evaluated segments, without evaluating them: it exports
    the memberships an earlier evaluation wrote back."""
    return {**job_body(0), "filter": {"segments": [{"segmentId": s} for s in segment_ids]}}


def evaluation_body(segment_ids: list[str]) -> dict[str, Any]:
    """The 20-segment combined export, with the segments evaluated by the job."""
    return {**evaluated_segments_body(segment_ids), "evaluationInfo": {"segmentation": True}}


def run_ours(spark: SparkSession, lake: Lake, body: dict, memory: PeakMemory, name: str,
             memberships: Path | None = None) -> Sample:
    """One job, created and run as a user's would be; the figure is its profileExportTime.
    `memberships`: the segmentation dataset the run starts from (a copy), if not an empty one."""
    config = lake.deployment(name, segmentation=body.get("evaluationInfo", {}).get("segmentation", False),
                             memberships=memberships)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, body, config.default_org, config.default_sandbox)
    with memory:
        started = time.perf_counter()
        final = run_job(store, config, record.id, spark)
        wall = time.perf_counter() - started
    if final.status is not JobStatus.SUCCEEDED:
        raise RuntimeError(f"{name}: job {final.id} ended {final.status.value}: {final.errors}")
    export = _span_s(final, "profile_export_time")
    destination = config.destination(DESTINATION_ID)
    if destination is None:
        raise RuntimeError(f"{name}: the deployment has no destination {DESTINATION_ID}")
    return Sample(export, _rows(final), config.resolve(destination.path),
                  wall - export, _span_s(final, "total_time") - export, final.id,
                  final.metrics.identity_graph_rounds)


def _span_s(record: JobRecord, name: str) -> float:
    return getattr(record.metrics, name).total_time_in_ms / 1000


def _rows(record: JobRecord) -> int:
    """Rows written: one per profile, or one per profile and segment in per-segment jobs."""
    if record.exported_rows is None:
        raise RuntimeError(f"job {record.id} reported no exported profile count")
    return record.exported_rows


def ours(spark: SparkSession, lake: Lake, memory: PeakMemory, key: str, name: str, body: dict,
         memberships: Path | None = None) -> Scenario:
    return Scenario(key, name, "ours", lambda run: run_ours(spark, lake, body, memory, run, memberships))


def written_back(spark: SparkSession, lake: Lake, memory: PeakMemory, segment_ids: list[str]) -> tuple[Sample, Path]:
    """One evaluation of the segments (a run that is not measured) and the segmentation dataset it wrote."""
    name = "written-back"
    return run_ours(spark, lake, evaluation_body(segment_ids), memory, name), lake.memberships_path(name)

