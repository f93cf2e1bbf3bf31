"""Our export jobs, created and run as a user's would be."""

from __future__ import annotations

import time

from benchmarks.lake import Lake
from benchmarks.memory import PeakMemory
from benchmarks.rounds import Sample, Scenario
from benchmarks.settings import DESTINATION_ID, EVENT_FIELDS, FIELDS, SCHEMA_NAME
from jobs.model import JobRecord, JobStatus
from jobs.runner import run_job
from jobs.sample import segment_id
from jobs.service import create_job
from jobs.store import JobStore


def job_body(segments: int, per_segment: bool = False, events: bool = False) -> dict:
    body = {
        "fields": FIELDS,
        "filter": {"segments": [{"segmentId": segment_id(i)} for i in range(segments)]},
        "destination": {"datasetId": DESTINATION_ID, "segmentPerBatch": per_segment},
        "schema": {"name": SCHEMA_NAME},
    }
    if events:
        body["additionalFields"] = {"eventList": {"fields": EVENT_FIELDS}}
    return body


def run_ours(spark, lake: Lake, body: dict, memory: PeakMemory, name: str) -> Sample:
    """One job, created and run as a user's would be; the figure is its profileExportTime."""
    config = lake.deployment(name)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, body, config.default_org, config.default_sandbox)
    with memory:
        started = time.perf_counter()
        final = run_job(store, config, record.id, spark)
        wall = time.perf_counter() - started
    if final.status is not JobStatus.SUCCEEDED:
        raise RuntimeError(f"{name}: job {final.id} ended {final.status.value}: {final.errors}")
    export = _span_s(final, "profile_export_time")
    return Sample(export, _rows(final), config.resolve(config.destination(DESTINATION_ID).path),
                  wall - export, _span_s(final, "total_time") - export, final.id)


def _span_s(record: JobRecord, name: str) -> float:
    return getattr(record.metrics, name).total_time_in_ms / 1000


def _rows(record: JobRecord) -> int:
    """Rows written: one per profile, or one per profile and segment in per-segment jobs."""
    by_segment = record.metrics.exported_profile_by_segment_counter
    if by_segment is None:
        return record.metrics.total_exported_profile_counter
    return sum(n for segments in by_segment.values() for n in segments.values())


def ours(spark, lake: Lake, memory: PeakMemory, key: str, name: str, body: dict) -> Scenario:
    return Scenario(key, name, "ours", lambda run: run_ours(spark, lake, body, memory, run))

