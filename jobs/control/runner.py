"""Running jobs: one job from claim to its final record, and the loops that run pending jobs.

`run_job` claims a NEW job, holds its lease while Spark works (jobs.control.leases),
honours a cancel, and records the outcome; `run_pending` and `RunnerLoop` (behind
`serve`) take back lost jobs, create the jobs of due schedules and run NEW jobs
one at a time, in one Spark session started only when there is work; between jobs
they maintain the job and schedule tables (jobs.control.tables: compaction, retention).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobs.control.failures import job_error
from jobs.control.jobs import JobStore, StatusConflict
from jobs.control.leases import (
    RELEASE_WAIT_S,
    JobHandle,
    LostJob,
    batches_committed,
    can_finish,
    claim,
    reap_lost_jobs,
    runner_id,
    running_job,
)
from jobs.control.privacy_jobs import PrivacyStore, SuppressionList, run_privacy_jobs
from jobs.control.schedules import ScheduleStore, advance_watermark, create_due_jobs, incremental_window
from jobs.engine import ExportResult, SegmentationResult, SparkJobGroup, run_export, run_segmentation, session_for
from jobs.planner import build_plan, gone_versions, input_versions
from jobs.spec import (
    SEGMENT_MATCHED_NOTHING,
    ComputeGatewayJobId,
    Config,
    ExcludedGraph,
    InputVersionGone,
    JobInputs,
    JobRecord,
    JobStatus,
    JobWarning,
    Metrics,
    TimeSpan,
    from_micros,
    hashed_id,
    now_ms,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

SparkFactory = Callable[[], "SparkSession"]


def deployment_session(config: Config, verbose: bool = False) -> SparkFactory:
    """The config's session, started on the first call and then shared."""
    return functools.cache(lambda: session_for(config, "export-jobs", verbose=verbose))


def run_job(store: JobStore, config: Config, job_id: int, spark: SparkSession | None = None,
            runner: str | None = None, spark_factory: SparkFactory | None = None,
            release: threading.Event | None = None) -> JobRecord:
    """Run a NEW job to SUCCEEDED, FAILED or CANCELLED; returns the final record. Once `release`
    is set (its runner is stopping), the job is given back as NEW and its Spark work stopped."""
    handle = claim(store, job_id, runner or runner_id(), int(config.lease_seconds * 1000))
    named = running_job.set(job_id)
    stop = threading.Event()
    group: list[SparkJobGroup] = []  # set once the session is up
    keeper = threading.Thread(target=handle.keep_alive,
                              args=(stop, lambda: group[0].progress() if group else None, release),
                              name=f"lease-{job_id}", daemon=True)
    keeper.start()
    try:
        return _run(handle, config, lambda: spark or (spark_factory or deployment_session(config))(), group)
    except LostJob as err:
        log.error("%s", err)
        return store.get(job_id)
    finally:
        stop.set()
        keeper.join()
        running_job.reset(named)


def _run(handle: JobHandle, config: Config, spark: SparkFactory, group: list[SparkJobGroup]) -> JobRecord:
    job_id = handle.record.id
    try:
        session = spark()
        group.append(SparkJobGroup(session, job_id))
        handle.on_cancel = group[0].cancel
        # A retry reads what the first run read: its window, its `now` and its input versions.
        first_run = handle.record.inputs is None
        starting = (incremental_window(ScheduleStore(config.schedule_table_path), handle.record) if first_run
                    else handle.record).evaluated_at(now_ms())
        tenant = (starting.ims_org_id, starting.sandbox_name)
        handle.update(stage="planning", compute_gateway_job_id=ComputeGatewayJobId(export_job=group[0].application_id),
                      filter=starting.filter, evaluation_info=starting.evaluation_info,
                      inputs=JobInputs(versions=input_versions(config.for_tenant(*tenant))) if first_run
                      else starting.inputs)
        if not first_run and starting.inputs is not None:
            gone = gone_versions(config.for_tenant(*tenant), starting.inputs.versions)
            if gone:
                raise InputVersionGone(f"job {job_id} must read the table versions its first run (or the job it "
                                       f"replays) read, and retention removed some: {'; '.join(gone)}")
        suppressed = SuppressionList(config.suppression_table_path).hashes(*tenant)
        plan = build_plan(handle.record, config, handle.store.deployment(config.deployment), tuple(suppressed))
        if handle.cancelled.is_set():
            return handle.finish(JobStatus.CANCELLED)
        if handle.record.is_segment_job:
            handle.update(stage="segmenting")
            started = now_ms()
            with group[0].running():
                segmented = run_segmentation(session, plan, lambda: handle.store.recent_namespaces(*tenant))
            return handle.finish(JobStatus.SUCCEEDED, metrics=_segmentation_metrics(handle.record, segmented, started))
        # The consent policies of the config as it is now (a destination's may have changed since creation).
        handle.update(stage="exporting", consent_policies=[rule.policy for rule in plan.consent] or None)
        export_start = now_ms()
        log.info("job %s: exporting to %s", job_id, plan.destination_path)
        with group[0].running():
            result = run_export(session, plan, lambda: handle.store.recent_namespaces(*tenant))
        export_end = now_ms()
    except LostJob:
        raise
    except Exception as err:  # the record must say what happened, whatever it was
        committed = batches_committed(handle.store, config, handle.record)
        if handle.cancelled.is_set() and committed is False:
            log.info("job %s cancelled", job_id)
            return handle.finish(JobStatus.CANCELLED)
        errors = handle.record.errors + [job_error(err, config.resolve(""))]
        if can_finish(handle.record, config, committed):
            log.warning("job %s: its batches are committed but the run ended before the job did (%s); it is "
                        "NEW again, and the next run finishes it", job_id, err)
            return handle.finish(JobStatus.NEW, errors=errors, retries=(handle.record.retries or 0) + 1)
        log.error("job %s failed: %s", job_id, err, exc_info=err)
        return handle.finish(JobStatus.FAILED, errors=errors)
    if handle.cancelled.is_set():
        log.warning("job %s: cancel came after its commit; it ends SUCCEEDED", job_id)
    metrics = handle.record.metrics.updated(
        profile_export_time=TimeSpan(start_time_in_ms=export_start).finish(export_end),
        total_exported_profile_counter=result.counts.total,
        exported_profile_by_namespace_counter=result.counts.by_namespace,
        exported_profile_by_segment_counter=(_by_segment(result.counts.by_segment)
                                             if handle.record.export_destination.segment_per_batch else None),
        rejected_record_counter=result.rejected,
        rejected_records=result.rejected_examples or None,
        segmented_profile_counter=result.evaluated.segmented if result.evaluated else None,
        segmented_profile_by_status_counter=result.evaluated.by_status if result.evaluated else None,
        **_graph_metrics(result, config.example_ids == "hashed"),
        consent_excluded_profile_counter=result.consent.excluded if result.consent else None,
        consent_excluded_profile_by_segment_counter=_by_segment(result.consent.by_segment) if result.consent else None,
        **_mirror_metrics(result),
    )
    if not result.committed_now:
        log.info("job %s: its batches were already committed by an earlier run", job_id)
    # Advance an incremental schedule once the commit exists, before the record says
    # SUCCEEDED: a crash in between may fail the job but can never re-export its window.
    # An evaluating run moves the watermark to at least its `now`, so that its own
    # write-back (ingested at `now`) is not new data for the schedule's next run.
    # The watermark is read from the input versions the first run fixed, so a retry, or a run that
    # finds another run's commit, moves it exactly as far as the committed rows reach.
    evaluated_at = handle.record.evaluation_time
    watermark = max(result.watermark or 0, evaluated_at * 1000 if evaluated_at else 0) or None
    inputs = handle.record.inputs
    if watermark is not None:
        advance_watermark(ScheduleStore(config.schedule_table_path), handle.record, watermark)
        inputs = inputs.updated(watermark=from_micros(watermark)) if inputs is not None else None
    warnings = matched_nothing(handle.record, result.counts.by_segment)
    for warning in (w for w in warnings if w.code == SEGMENT_MATCHED_NOTHING):
        log.warning("job %s: %s: %s", job_id, warning.path, warning.msg)
    return handle.finish(JobStatus.SUCCEEDED, metrics=metrics, inputs=inputs, warnings=warnings or None)


def _segmentation_metrics(record: JobRecord, result: SegmentationResult, started: int) -> Metrics:
    if not result.committed_now:
        log.info("job %s: its memberships were already written back by an earlier run", record.id)
    return record.metrics.updated(
        profile_segmentation_time=TimeSpan(start_time_in_ms=started).finish(now_ms()),
        total_profiles=result.total_profiles,
        segmented_profile_counter=result.evaluated.segmented,
        segmented_profile_by_status_counter=result.evaluated.by_status,
        segmented_profile_by_namespace_counter=result.by_namespace,
        identity_graph_rounds=result.graph.rounds if result.graph is not None else None,
    )


def _graph_metrics(result: ExportResult, hashed_ids: bool) -> dict[str, object]:
    """identityGraph pdg: the components the cap excluded (their ids hashed, Config.example_ids)."""
    if result.graph is None:
        return {}
    examples = [ExcludedGraph(namespace=ns, id=hashed_id(key) if hashed_ids else key, size=size)
                for ns, key, size in result.graph.excluded_examples]
    return {"identity_graph_rounds": result.graph.rounds, "excluded_graph_counter": result.graph.excluded,
            "excluded_graphs": examples or None}


def _mirror_metrics(result: ExportResult) -> dict[str, object]:
    """A mirror destination: what the job's MERGE inserted, updated and deleted, and the version it wrote."""
    if result.mirror is None:
        return {}
    return {"inserted_profile_counter": result.mirror.inserted, "updated_profile_counter": result.mirror.updated,
            "deleted_profile_counter": result.mirror.deleted, "destination_version": result.mirror.version}


def _by_segment(by_segment: dict[tuple[str, str], int] | None) -> dict[str, dict[str, int]] | None:
    if not by_segment:
        return None
    counter: dict[str, dict[str, int]] = {}
    for (namespace, segment), profiles in by_segment.items():
        counter.setdefault(namespace, {})[segment] = profiles
    return counter


def matched_nothing(record: JobRecord, by_segment: dict[tuple[str, str], int] | None) -> list[JobWarning]:
    """The record's warnings after a run: those of its creation, and one per counted filter segment
    (ExportPlan.counted_segments) that no exported profile matched: a misspelt id, an empty segment,
    or a filter that left no one."""
    kept = [w for w in record.warnings or () if w.code != SEGMENT_MATCHED_NOTHING]
    empty = [
        JobWarning(code=SEGMENT_MATCHED_NOTHING, path=f"filter.segments[{i}]",
                   msg=f"no exported profile is a member of segment {s.segment_id!r} ({s.segment_ns}) in the "
                       f"statuses {', '.join(s.status)}")
        for i, s in enumerate(record.filter.segments or ())
        if by_segment is not None and by_segment.get((s.segment_ns, s.segment_id)) == 0
    ]
    return kept + empty


def run_pending(store: JobStore, config: Config, max_jobs: int | None = None,
                spark_factory: SparkFactory | None = None, runner: str | None = None,
                stop: threading.Event | None = None, schedules: ScheduleStore | None = None,
                release: threading.Event | None = None) -> list[JobRecord]:
    """Take back lost jobs, create the jobs of due schedules, run the privacy jobs no runner holds,
    then claim and run NEW jobs, oldest first, one at a time, in one session started only if there
    is work; between jobs, maintain the tables and take back jobs lost meanwhile (another runner died). `stop`: claim no
    more; `release`: give the running job back as NEW (JobHandle.release)."""
    runner = runner or runner_id()
    spark = spark_factory or deployment_session(config)
    schedules = schedules or ScheduleStore(config.schedule_table_path)
    reap_lost_jobs(store, config)
    try:
        create_due_jobs(schedules, store, config)
    except Exception:  # the schedule table unreadable: NEW jobs still run
        log.exception("the scheduler could not read the schedules")
    # Privacy requests first: an erasure must not wait behind a queue of exports.
    run_privacy_jobs(PrivacyStore(config.privacy_table_path), config, spark, runner, store)
    done: list[JobRecord] = []
    while max_jobs is None or len(done) < max_jobs:
        if stop is not None and stop.is_set():
            break
        ran = False
        for job_id in store.ids_with_status(JobStatus.NEW):
            try:
                done.append(run_job(store, config, job_id, runner=runner, spark_factory=spark, release=release))
                for table in (store, schedules):
                    table.maintain(config.table_retention_hours)
                reap_lost_jobs(store, config)
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
                 spark_factory: SparkFactory | None = None):
        self.store, self.config, self.poll = store, config, poll_seconds
        self.spark = spark_factory or deployment_session(config)
        # Kept across polls, so that each table is vacuumed at most every VACUUM_EVERY_SECONDS.
        self.schedules = ScheduleStore(config.schedule_table_path)
        self._stop = threading.Event()
        self._release = threading.Event()
        self._started = threading.Event()  # the session is up: the loop takes jobs (readiness)
        self._thread = threading.Thread(target=self._loop, name="runner-loop", daemon=True)

    def _loop(self) -> None:
        runner = runner_id()
        try:
            self.spark()  # start the session now, so that being ready means a job starts at once
        except Exception:
            log.exception("runner loop: the Spark session did not start")
            return
        self._started.set()
        while not self._stop.is_set():
            try:
                run_pending(self.store, self.config, spark_factory=self.spark, runner=runner, stop=self._stop,
                            schedules=self.schedules, release=self._release)
            except Exception:  # keep serving; the next poll tries again
                log.exception("runner loop")
            self._stop.wait(self.poll)

    def start(self) -> None:
        self._thread.start()

    def ready(self) -> bool:
        """The session is up and the loop is running."""
        return self._started.is_set() and self._thread.is_alive() and not self._stop.is_set()

    def stop(self, grace: float = 30.0) -> None:
        """Claim no more jobs; give the running one `grace` seconds to finish, then give it back as NEW
        (and wait up to RELEASE_WAIT_S for its Spark work to stop)."""
        self._stop.set()
        self._thread.join(grace)
        if self._thread.is_alive():
            log.warning("runner loop: the running job did not finish within %g s: giving it back", grace)
            self._release.set()
            self._thread.join(RELEASE_WAIT_S)
