"""Runs one job: claim it, export, and record what happened on the job record."""

from __future__ import annotations

import logging
import traceback

from jobs.config import Config
from jobs.export import run_export
from jobs.model import ComputeGatewayJobId, JobError, JobRecord, JobStatus, TimeSpan
from jobs.plan import LakeError, build_plan
from jobs.schema import UnknownPath
from jobs.service import now_ms
from jobs.sink import DestinationConflict
from jobs.store import JobStore

log = logging.getLogger(__name__)


def claim(store: JobStore, job_id: int) -> JobRecord:
    """NEW → PROCESSING, conditionally: raises StatusConflict if another runner has it."""
    record = store.get(job_id)
    start = now_ms()
    claimed = record.model_copy(update={
        "status": JobStatus.PROCESSING,
        "stage": "starting",
        "update_time": start,
        "metrics": record.metrics.model_copy(update={"total_time": TimeSpan(start_time_in_ms=start)}),
    })
    return store.replace(claimed, expected=[JobStatus.NEW])


def run_job(store: JobStore, config: Config, job_id: int, spark=None) -> JobRecord:
    """Run a NEW job to SUCCEEDED or FAILED; returns the final record."""
    record = claim(store, job_id)
    try:
        if spark is None:
            from jobs.session import build_session

            master, conf = config.spark_conf()
            spark = build_session(master, f"export-job-{job_id}", conf)
        record = _progress(store, record, "exporting",
                           compute_gateway_job_id=ComputeGatewayJobId(
                               export_job=spark.sparkContext.applicationId))
        plan = build_plan(record, config)
        export_start = now_ms()
        log.info("job %s: exporting to %s", job_id, plan.destination_path)
        spark.sparkContext.setJobDescription(f"export job {job_id}")
        result = run_export(spark, plan)
        export_end = now_ms()
        metrics = record.metrics.model_copy(update={
            "profile_export_time": TimeSpan(start_time_in_ms=export_start).finish(export_end),
            "total_exported_profile_counter": result.total,
            "exported_profile_by_namespace_counter": result.by_namespace,
            "exported_profile_by_segment_counter": _by_segment(record, result.by_batch),
            "rejected_record_counter": result.rejected,
            "rejected_records": result.rejected_examples or None,
        })
        if not result.committed_now:
            log.info("job %s: its batches were already committed by an earlier run", job_id)
        return _finish(store, record, JobStatus.SUCCEEDED, metrics=metrics)
    except Exception as err:  # the record must say what happened, whatever it was
        log.error("job %s failed: %s", job_id, err)
        return _finish(store, record, JobStatus.FAILED, errors=[job_error(err)])


def _by_segment(record: JobRecord, by_batch: dict[str, int]) -> dict[str, dict[str, int]] | None:
    batches = record.destination.batches
    if batches is None:
        return None
    counter: dict[str, dict[str, int]] = {}
    for batch in batches:
        counter.setdefault(batch.segment_ns, {})[batch.segment_id] = by_batch.get(batch.batch_id, 0)
    return counter


def _progress(store: JobStore, record: JobRecord, stage: str, **changes) -> JobRecord:
    updated = record.model_copy(update={"stage": stage, "update_time": now_ms(), **changes})
    return store.replace(updated, expected=[JobStatus.PROCESSING])


def _finish(store: JobStore, record: JobRecord, status: JobStatus, **changes) -> JobRecord:
    end = now_ms()
    metrics = changes.pop("metrics", record.metrics)
    if metrics.total_time is not None:
        metrics = metrics.model_copy(update={"total_time": metrics.total_time.finish(end)})
    final = record.model_copy(update={
        "status": status, "stage": None, "update_time": end, "metrics": metrics, **changes,
    })
    return store.replace(final, expected=[JobStatus.PROCESSING])


def job_error(err: Exception) -> JobError:
    """An error a user can act on, with the exception class and top frames for support."""
    stack = "".join(traceback.format_exception(type(err), err, err.__traceback__, limit=5))
    return JobError(code=_code(err), msg=_message(err), call_stack=stack[-4000:])


def _code(err: Exception) -> str:
    if isinstance(err, (LakeError, UnknownPath)):
        return "INVALID_LAKE"
    if isinstance(err, DestinationConflict):
        return "DESTINATION_SCHEMA_CONFLICT"
    name = type(err).__name__
    return "SPARK_ANALYSIS" if "Analysis" in name else "EXPORT_FAILED"


def _message(err: Exception) -> str:
    if isinstance(err, DestinationConflict):
        return str(err)
    if isinstance(err, UnknownPath):
        return f"the profile schema changed since the job was created: field {err}"
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"{type(err).__name__}: {text}"[:2000]
