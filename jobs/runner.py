"""Runs jobs: claim, hold a lease while Spark works, honour cancels, record the outcome.

A job's record is written only through its `JobHandle` while it runs, so the
export thread and the lease thread never overwrite each other. Every write is
conditional on the job still being held by this runner; a cancel (DELETE, which
moves PROCESSING to CANCELLING) makes the next write fail, and the handle then
stops the job's Spark work through its job group.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
import uuid
from datetime import datetime, timedelta, timezone
from typing import Callable

from jobs.config import Config
from jobs.export import run_export
from jobs.model import ComputeGatewayJobId, JobError, JobRecord, JobStatus, TimeSpan, format_rfc3339
from jobs.plan import LakeError, build_plan
from jobs.schedules import ScheduleStore, create_due_jobs, incremental_from, schedule_of
from jobs.schema import UnknownPath
from jobs.service import now_ms
from jobs.sink import DestinationConflict, already_committed, java_message
from jobs.store import JobStore, Lease, StatusConflict

log = logging.getLogger(__name__)


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LostJob(Exception):
    """This runner no longer holds the job (its lease expired and it was taken back)."""


class JobHandle:
    def __init__(self, store: JobStore, record: JobRecord, runner: str, lease_ms: int):
        self.store, self.record, self.runner, self.lease_ms = store, record, runner, lease_ms
        self.cancelled = threading.Event()
        self.on_cancel: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self._finished = False

    def update(self, **changes) -> JobRecord:
        """Write changes (renewing the lease); notices a cancel or a lost lease."""
        with self._lock:
            if self._finished:  # the lease thread may tick once more after the end
                return self.record
            return self._write(self.record.status, Lease(self.runner, now_ms() + self.lease_ms, self.runner),
                               **changes)

    def finish(self, status: JobStatus, **changes) -> JobRecord:
        with self._lock:
            end = now_ms()
            metrics = changes.pop("metrics", self.record.metrics)
            if metrics.total_time is not None:
                metrics = metrics.model_copy(update={"total_time": metrics.total_time.finish(end)})
            self._finished = True
            return self._write(status, Lease(None, None, self.runner), stage=None, metrics=metrics, **changes)

    def _write(self, status: JobStatus, lease: Lease, **changes) -> JobRecord:
        for _ in range(3):
            new = self.record.model_copy(update={**changes, "status": status, "update_time": now_ms()})
            try:
                self.record = self.store.replace(new, expected=[self.record.status], lease=lease)
                return self.record
            except StatusConflict as err:
                if err.status != JobStatus.CANCELLING.value or self.record.status is not JobStatus.PROCESSING:
                    raise LostJob(f"job {self.record.id} is no longer held by runner {self.runner}: {err}") from None
                self._cancel_requested()
                if status is JobStatus.PROCESSING:
                    status = JobStatus.CANCELLING
        raise LostJob(f"job {self.record.id}: could not write its record")

    def _cancel_requested(self) -> None:
        log.info("job %s: cancel requested, stopping its Spark work", self.record.id)
        self.record = self.record.model_copy(update={"status": JobStatus.CANCELLING})
        self.cancelled.set()
        self.on_cancel()

    def keep_alive(self, stop: threading.Event, progress: Callable[[], str | None]) -> None:
        """Renew the lease (and publish progress) until `stop`; runs in its own thread."""
        interval = min(2.0, self.lease_ms / 3000)
        while not stop.wait(interval):
            if self.cancelled.is_set():
                # Cancelling a job group stops only its running Spark jobs: repeat it so
                # that a job the export starts afterwards is stopped too.
                self.on_cancel()
            try:
                stage = progress()
                self.update(**({"stage": stage} if stage else {}))
            except LostJob as err:
                log.error("%s", err)
                self.on_cancel()
                return


def claim(store: JobStore, job_id: int, runner: str, lease_ms: int) -> JobHandle:
    """NEW → PROCESSING, conditionally: raises StatusConflict if another runner has it."""
    record = store.get(job_id)
    start = now_ms()
    claimed = record.model_copy(update={
        "status": JobStatus.PROCESSING,
        "stage": "starting",
        "update_time": start,
        "metrics": record.metrics.model_copy(update={"total_time": TimeSpan(start_time_in_ms=start)}),
    })
    store.replace(claimed, expected=[JobStatus.NEW], lease=Lease(runner, start + lease_ms))
    return JobHandle(store, claimed, runner, lease_ms)


def run_job(store: JobStore, config: Config, job_id: int, spark=None, runner: str | None = None,
            spark_factory: Callable[[], object] | None = None) -> JobRecord:
    """Run a NEW job to SUCCEEDED, FAILED or CANCELLED; returns the final record."""
    handle = claim(store, job_id, runner or runner_id(), int(config.lease_seconds * 1000))
    stop = threading.Event()
    group = f"export-job-{job_id}-{uuid.uuid4().hex[:8]}"
    holder: dict = {}
    keeper = threading.Thread(target=handle.keep_alive, args=(stop, lambda: _progress(holder, group)),
                              name=f"lease-{job_id}", daemon=True)
    keeper.start()
    try:
        return _run(handle, config, spark, spark_factory, group, holder)
    except LostJob as err:
        log.error("%s", err)
        return store.get(job_id)
    finally:
        stop.set()
        keeper.join()


def _run(handle: JobHandle, config: Config, spark, spark_factory, group: str, holder: dict) -> JobRecord:
    job_id = handle.record.id
    try:
        if spark is None:
            spark = spark_factory() if spark_factory else default_session(config, job_id)
        sc = spark.sparkContext
        holder["sc"] = sc
        handle.on_cancel = lambda: sc.cancelJobGroup(group)
        handle.update(stage="planning", compute_gateway_job_id=ComputeGatewayJobId(export_job=sc.applicationId),
                      **_incremental_window(config, handle.record))
        plan = build_plan(handle.record, config)
        if handle.cancelled.is_set():
            return handle.finish(JobStatus.CANCELLED)
        handle.update(stage="exporting")
        export_start = now_ms()
        log.info("job %s: exporting to %s", job_id, plan.destination_path)
        sc.setJobGroup(group, f"export job {job_id}", interruptOnCancel=True)
        try:
            result = run_export(spark, plan)
        finally:
            sc.setLocalProperty("spark.jobGroup.id", None)
        export_end = now_ms()
    except LostJob:
        raise
    except Exception as err:  # the record must say what happened, whatever it was
        if handle.cancelled.is_set() and not _committed(config, handle.record):
            log.info("job %s cancelled", job_id)
            return handle.finish(JobStatus.CANCELLED)
        log.error("job %s failed: %s", job_id, err)
        return handle.finish(JobStatus.FAILED, errors=handle.record.errors + [job_error(err)])
    if handle.cancelled.is_set():
        log.warning("job %s: cancel came after its commit; it ends SUCCEEDED", job_id)
    metrics = handle.record.metrics.model_copy(update={
        "profile_export_time": TimeSpan(start_time_in_ms=export_start).finish(export_end),
        "total_exported_profile_counter": result.counts.total,
        "exported_profile_by_namespace_counter": result.counts.by_namespace,
        "exported_profile_by_segment_counter": _by_segment(handle.record, result.counts.by_batch),
        "rejected_record_counter": result.rejected,
        "rejected_records": result.rejected_examples or None,
    })
    if not result.committed_now:
        log.info("job %s: its batches were already committed by an earlier run", job_id)
    # Advance an incremental schedule once the commit exists, before the record says
    # SUCCEEDED: a crash in between may fail the job but can never re-export its window.
    schedule_id = schedule_of(handle.record)
    if schedule_id and result.watermark is not None:
        ScheduleStore(config.schedule_table_path).advance_watermark(schedule_id, result.watermark)
    return handle.finish(JobStatus.SUCCEEDED, metrics=metrics)


def _incremental_window(config: Config, record: JobRecord) -> dict:
    """For a job of an incremental schedule: its filter, from the last successful run's watermark."""
    watermark = incremental_from(ScheduleStore(config.schedule_table_path), record)
    if watermark is False or watermark is None:
        return {}
    since = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=watermark)
    return {"filter": {**record.filter, "fromIngestTimestamp": format_rfc3339(since)}}


def default_session(config: Config, job_id: int):
    from jobs.session import build_session

    master, conf = config.spark_conf()
    return build_session(master, f"export-job-{job_id}", conf)


def _committed(config: Config, record: JobRecord) -> bool:
    try:
        return already_committed(build_plan(record, config))
    except Exception:  # a plan that cannot be built was not committed either
        return False


def _progress(holder: dict, group: str) -> str | None:
    """'exporting: 12/40 tasks' from Spark's status tracker, for the record's stage."""
    sc = holder.get("sc")
    if sc is None:
        return None
    tracker = sc.statusTracker()
    done = total = 0
    for job in tracker.getJobIdsForGroup(group):
        info = tracker.getJobInfo(job)
        for stage_id in info.stageIds if info else ():
            stage = tracker.getStageInfo(stage_id)
            if stage:
                done, total = done + stage.numCompletedTasks, total + stage.numTasks
    return f"exporting: {done}/{total} tasks" if total else None


def _by_segment(record: JobRecord, by_batch: dict[str, int]) -> dict[str, dict[str, int]] | None:
    batches = record.destination.batches
    if batches is None:
        return None
    counter: dict[str, dict[str, int]] = {}
    for batch in batches:
        counter.setdefault(batch.segment_ns, {})[batch.segment_id] = by_batch.get(batch.batch_id, 0)
    return counter


# ---------------------------------------------------------------- many jobs


def reap_lost_jobs(store: JobStore, config: Config) -> list[JobRecord]:
    """Take back running jobs whose runner stopped renewing its lease."""
    now = now_ms()
    taken = []
    for row in store.expired_leases(now):
        record = store.get(row["id"])
        if record.status is JobStatus.CANCELLING:
            final = record.model_copy(update={"status": JobStatus.CANCELLED, "stage": None, "update_time": now})
        else:
            error = JobError(
                code="RUNNER_LOST",
                msg=f"the runner {row['runner']} stopped renewing its lease on this job "
                f"(it was killed or lost); "
                + ("its batches were committed before it was lost. " if _committed(config, record)
                   else "nothing was written to the destination. ")
                + "Create the job again to rerun it.",
            )
            retries = record.retries or 0
            retry = retries < config.lost_job_retries
            final = record.model_copy(update={
                "status": JobStatus.NEW if retry else JobStatus.FAILED,
                "stage": None,
                "update_time": now,
                "errors": record.errors + [error],
                "retries": retries + 1 if retry else record.retries,
            })
        try:
            taken.append(store.replace(final, expected=[record.status], lease=Lease(None, None, row["runner"]),
                                       expired_before=now))
            log.warning("job %s: runner %s lost; job is now %s", record.id, row["runner"], final.status.value)
        except StatusConflict:
            continue  # renewed or taken back by someone else meanwhile
    return taken


def run_pending(store: JobStore, config: Config, max_jobs: int | None = None,
                spark_factory: Callable[[], object] | None = None, runner: str | None = None,
                stop: threading.Event | None = None) -> list[JobRecord]:
    """Take back lost jobs, create the jobs of due schedules, then claim and run NEW jobs,
    oldest first, one at a time.

    One Spark session serves all the jobs of a call; it is started only if there is work.
    """
    runner = runner or runner_id()
    reap_lost_jobs(store, config)
    create_due_jobs(ScheduleStore(config.schedule_table_path), store, config)
    session: dict = {}

    def spark():
        if "spark" not in session:
            session["spark"] = spark_factory() if spark_factory else default_session(config, 0)
        return session["spark"]

    done: list[JobRecord] = []
    while max_jobs is None or len(done) < max_jobs:
        if stop is not None and stop.is_set():
            break
        ran = False
        for job_id in store.ids_with_status(JobStatus.NEW):
            try:
                done.append(run_job(store, config, job_id, runner=runner, spark_factory=spark))
                store.maintain()
                ran = True
                break
            except StatusConflict:
                continue  # another runner claimed it first
        if not ran:
            break
    return done


class RunnerLoop:
    """A background thread that runs pending jobs until stopped (behind `serve`)."""

    def __init__(self, store: JobStore, config: Config, poll_seconds: float = 1.0,
                 spark_factory: Callable[[], object] | None = None):
        self.store, self.config, self.poll = store, config, poll_seconds
        self.spark_factory = spark_factory
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="runner-loop", daemon=True)
        self._session: dict = {}

    def _spark(self):
        if "spark" not in self._session:
            self._session["spark"] = (self.spark_factory or (lambda: default_session(self.config, 0)))()
        return self._session["spark"]

    def _loop(self) -> None:
        runner = runner_id()
        while not self._stop.is_set():
            try:
                run_pending(self.store, self.config, spark_factory=self._spark, runner=runner, stop=self._stop)
            except Exception:  # keep serving; the next poll tries again
                log.exception("runner loop")
            self._stop.wait(self.poll)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)


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
    full = java_message(err).strip()
    text = full.splitlines()[0] if full else type(err).__name__
    return f"{type(err).__name__}: {text}"[:2000]
