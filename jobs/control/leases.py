"""Claims and leases: which runner holds a running job, and taking jobs back from lost runners.

A runner claims a NEW job with a conditional update (NEW → PROCESSING, with its
name and a lease expiry), so two runners never both win one. While it holds the
job, it writes the record only through the job's `JobHandle`, so that the export
thread and the lease thread never overwrite each other; every write renews the
lease and requires that this runner still holds the job. A cancel (PROCESSING →
CANCELLING) makes the next write fail, and the handle then stops the job's Spark
work. A runner that stops renewing loses the job to `reap_lost_jobs`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from jobs.control.jobs import JobStore, Lease, StatusConflict
from jobs.control.metrics import LEASE_RENEWALS, LEASES_LOST, LOST_RUNNERS
from jobs.planner import build_plan
from jobs.spec import Config, Conflict, JobError, JobRecord, JobStatus, TimeSpan, now_ms

log = logging.getLogger(__name__)
# A job whose batches a run committed is never left FAILED or CANCELLED by a crash, an exception or a
# cancel after that commit: it is NEW again, and the next run finishes it (an evaluating job's
# write-back, the record's counts) without writing its batches twice; up to this many times
# beyond lostJobRetries.
FINISH_ATTEMPTS = 3
# The error a job given back by its stopping runner carries (JobHandle.release).
RUNNER_STOPPED = "RUNNER_STOPPED"
# How long a stopping runner waits for a released job's Spark work to stop before it exits anyway.
RELEASE_WAIT_S = 15.0
# The job the current thread works for (its run, its lease thread), which JSON logs name (jobs.shells.logs).
running_job: ContextVar[int | None] = ContextVar("running_job", default=None)


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LostJob(Conflict):
    """This runner no longer holds the job (its lease expired and it was taken back)."""

    code = "RUNNER_LOST"


class JobHandle:
    def __init__(self, store: JobStore, record: JobRecord, runner: str, lease_ms: int):
        self.store, self.record, self.runner, self.lease_ms = store, record, runner, lease_ms
        self.cancelled = threading.Event()
        self.on_cancel: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self._finished = False

    def update(self, **changes: Any) -> JobRecord:
        """Write changes (renewing the lease); notices a cancel or a lost lease. A change of the
        stage alone, as every renewal has, leaves the stored record as it is (JobStore.replace)."""
        with self._lock:
            if self._finished:  # the lease thread may tick once more after the end
                return self.record
            lease = Lease(self.runner, now_ms() + self.lease_ms, self.runner)
            record = self._write(self.record.status, lease, renewal=changes.keys() <= {"stage"}, **changes)
            LEASE_RENEWALS.inc()
            return record

    def finish(self, status: JobStatus, **changes: Any) -> JobRecord:
        with self._lock:
            if self._finished:  # released meanwhile (release): the record is no longer this run's
                return self.record
            end = now_ms()
            metrics = changes.pop("metrics", self.record.metrics)
            if metrics.total_time is not None:
                metrics = metrics.updated(total_time=metrics.total_time.finish(end))
            self._finished = True
            return self._write(status, Lease(None, None, self.runner), stage=None, metrics=metrics, **changes)

    def _write(self, status: JobStatus, lease: Lease, renewal: bool = False, **changes: Any) -> JobRecord:
        for _ in range(3):
            new = self.record.updated(**changes, status=status, update_time=now_ms())
            try:
                self.record = self.store.replace(new, expected=[self.record.status], lease=lease, renewal=renewal)
                return self.record
            except StatusConflict as err:
                if err.status != JobStatus.CANCELLING.value or self.record.status is not JobStatus.PROCESSING:
                    LEASES_LOST.inc()
                    raise LostJob(f"job {self.record.id} is no longer held by runner {self.runner}: {err}") from None
                self._cancel_requested()
                if status is JobStatus.PROCESSING:
                    status = JobStatus.CANCELLING
        raise LostJob(f"job {self.record.id}: could not write its record")

    def _cancel_requested(self) -> None:
        log.info("job %s: cancel requested, stopping its Spark work", self.record.id)
        self.record = self.record.updated(status=JobStatus.CANCELLING)
        self.cancelled.set()
        self.on_cancel()

    def release(self) -> None:
        """Give a running job back as NEW at once and stop its Spark work: its runner is shutting down
        (SIGTERM past shutdownGraceSeconds), and another runner may take the job now rather than when
        the lease runs out. A commit the run makes meanwhile is found by the next run, as after a lost
        runner, which then finishes the job without writing twice. A job being cancelled is left to
        end CANCELLED as its lease runs out."""
        with self._lock:
            if self._finished or self.record.status is not JobStatus.PROCESSING:
                return
            self._finished = True
            error = JobError(code=RUNNER_STOPPED, msg=f"the runner {self.runner} was stopped before the job "
                             "finished (shutdownGraceSeconds ran out); the job is NEW again and the next runner "
                             "runs it from the start, never writing its batches twice")
            try:
                self._write(JobStatus.NEW, Lease(None, None, self.runner), stage=None,
                            errors=[*self.record.errors, error])
                log.warning("job %s: released (NEW again) as its runner stops", self.record.id)
            except LostJob as err:
                log.error("%s", err)
        self.on_cancel()

    def keep_alive(self, stop: threading.Event, progress: Callable[[], str | None],
                   release: threading.Event | None = None) -> None:
        """Renew the lease (and publish progress) until `stop`, or give the job back once `release`
        is set; runs in its own thread."""
        running_job.set(self.record.id)
        interval = min(2.0, self.lease_ms / 3000)
        while not stop.wait(interval):
            if release is not None and release.is_set():
                self.release()
                return
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
    claimed = record.updated(
        status=JobStatus.PROCESSING,
        stage="starting",
        update_time=start,
        metrics=record.metrics.updated(total_time=TimeSpan(start_time_in_ms=start)),
    )
    store.replace(claimed, expected=[JobStatus.NEW], lease=Lease(runner, start + lease_ms))
    return JobHandle(store, claimed, runner, lease_ms)


def batches_committed(store: JobStore, config: Config, record: JobRecord) -> bool | None:
    """Whether some run of the job committed its batches to the destination (a segment job: its
    memberships to the segmentation dataset); None when that cannot be told (the destination cannot
    be read, or the job no longer fits the config)."""
    from jobs.engine import already_committed, writeback_committed

    try:
        plan = build_plan(record, config, store.deployment(config.deployment))
        return writeback_committed(plan) if record.is_segment_job else already_committed(plan)
    except Exception as err:  # the caller says it could not tell, rather than guess
        log.warning("job %s: could not tell whether its batches were committed: %s", record.id, err)
        return None


def can_finish(record: JobRecord, config: Config, committed: bool | None) -> bool:
    """Whether the job, whose run ended before its record did, goes back to NEW to be finished:
    its batches are committed, and it has attempts left (FINISH_ATTEMPTS)."""
    return committed is True and (record.retries or 0) < config.lost_job_retries + FINISH_ATTEMPTS


def lost_runner_error(config: Config, record: JobRecord, runner: str, committed: bool | None) -> JobError:
    """What a job whose runner was lost says: what was written, and what happens next."""
    retries, allowed = record.retries or 0, config.lost_job_retries
    if can_finish(record, config, committed):
        then = "It is NEW again, and the next run finishes it without writing its batches twice."
    elif retries < allowed:
        then = (f"It is NEW again and will be retried (retry {retries + 1} of {allowed}, "
                f"{allowed - retries - 1} left after it); a retry never writes its batches twice.")
    elif retries:
        then = f"It was retried {retries} times already (lostJobRetries); create the job again to rerun it."
    else:
        then = "Create the job again to rerun it."
    written = {
        True: "its batches were committed before it was lost. ",
        False: "nothing was written to the destination. ",
        None: "whether its batches were committed could not be checked (the server log says why). ",
    }[committed]
    return JobError(
        code=LostJob.code,
        msg=f"the runner {runner} stopped renewing its lease on this job (it was killed or lost); " + written + then,
    )


def reap_lost_jobs(store: JobStore, config: Config) -> list[JobRecord]:
    """Take back running jobs whose runner stopped renewing its lease."""
    now = now_ms()
    taken = []
    for row in store.running(lease_expired_before=now):
        record = store.get(row["id"])
        committed = batches_committed(store, config, record)
        finishing = can_finish(record, config, committed)
        if record.status is JobStatus.CANCELLING and not finishing:
            final = record.updated(status=JobStatus.CANCELLED, stage=None, update_time=now)
        else:
            retries = record.retries or 0
            retry = finishing or retries < config.lost_job_retries
            final = record.updated(
                status=JobStatus.NEW if retry else JobStatus.FAILED,
                stage=None,
                update_time=now,
                errors=record.errors + [lost_runner_error(config, record, row["runner"], committed)],
                retries=retries + 1 if retry else record.retries,
            )
        try:
            taken.append(store.replace(final, expected=[record.status], lease=Lease(None, None, row["runner"]),
                                       expired_before=now))
            LOST_RUNNERS.labels(status=final.status.value).inc()
            log.warning("job %s: runner %s lost; job is now %s", record.id, row["runner"], final.status.value)
        except StatusConflict:
            continue  # renewed or taken back by someone else meanwhile
    return taken
