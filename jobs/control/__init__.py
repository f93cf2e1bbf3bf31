"""The control plane: the job, segment and schedule tables (delta-rs, no JVM), leases, the runner
that drives the engine, and the Prometheus metrics of the tables and the runner. Each resource has one
module here with its store and operations."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from jobs.control.jobs import (
    EXPORT_JOB,
    JOB_TABLE_SCHEMA,
    SEGMENT_JOB,
    JobNotFound,
    JobStore,
    Lease,
    StatusConflict,
    cancel_job,
    create_job,
    explain_job,
    job_row,
    list_jobs,
    new_batch_id,
    new_record,
    replay_job,
)
from jobs.control.leases import (
    RELEASE_WAIT_S,
    RUNNER_STOPPED,
    JobHandle,
    LostJob,
    batches_committed,
    claim,
    lost_runner_error,
    reap_lost_jobs,
    runner_id,
    running_job,
)
from jobs.control.metrics import Source, TableCollector, scrape_registry, table_sources
from jobs.control.pages import (
    JOB_CURSOR,
    SCHEDULE_CURSOR,
    SEGMENT_CURSOR,
    CursorFormat,
    cursor_page,
    page_document,
)
from jobs.control.previews import (
    PREVIEW_TABLE_SCHEMA,
    PreviewNotFound,
    PreviewStore,
    PreviewWorker,
    compute_preview,
    create_preview,
    estimate_document,
    preview_page,
    run_previews,
    settled_preview,
)
from jobs.control.privacy_jobs import (
    PrivacyStore,
    SuppressionList,
    access_document,
    create_privacy_jobs,
    list_privacy_jobs,
    run_privacy_jobs,
)
from jobs.control.schedules import (
    CLAIM_GRACE_MS,
    SCHEDULE_TABLE_SCHEMA,
    ScheduleNotFound,
    ScheduleStore,
    advance_watermark,
    create_due_jobs,
    create_schedule,
    evaluations_of,
    incremental_window,
    list_schedules,
    next_runs,
    patch_schedule,
    previous_run_active,
)
from jobs.control.segment_jobs import (
    bulk_get_segment_jobs,
    cancel_segment_job,
    create_segment_job,
    list_segment_jobs,
    segment_job_document,
)
from jobs.control.segments import (
    SEGMENT_TABLE_SCHEMA,
    SegmentConflict,
    SegmentNotFound,
    SegmentStore,
    check_new_expression,
    create_segment,
    definition_policy,
    delete_segment,
    list_segments,
    update_segment,
    validate_expression,
)
from jobs.control.tables import (
    DeltaRows,
    all_of,
    any_of,
    before,
    below,
    equal,
    literal,
    one_of,
    retry_commits,
    tenant,
)

if TYPE_CHECKING:
    from jobs.control.failures import job_error
    from jobs.control.runner import RunnerLoop, SparkFactory, deployment_session, run_job, run_pending

# The runner drives the Spark engine: its names load pyspark when they are first used, so that
# the commands that only read or write the control tables start without it.
_LOADED_ON_USE = {"job_error": "jobs.control.failures", "RunnerLoop": "jobs.control.runner",
                  "SparkFactory": "jobs.control.runner", "deployment_session": "jobs.control.runner",
                  "run_job": "jobs.control.runner", "run_pending": "jobs.control.runner"}


def __getattr__(name: str) -> object:
    if name not in _LOADED_ON_USE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LOADED_ON_USE[name]), name)

__all__ = [
    "Source",
    "TableCollector",
    "scrape_registry",
    "table_sources",
    "running_job",
    "patch_schedule",
    "bulk_get_segment_jobs",
    "cancel_segment_job",
    "create_segment_job",
    "list_segment_jobs",
    "segment_job_document",
    "EXPORT_JOB",
    "SEGMENT_JOB",
    "PREVIEW_TABLE_SCHEMA",
    "PreviewNotFound",
    "PreviewStore",
    "PreviewWorker",
    "compute_preview",
    "create_preview",
    "estimate_document",
    "preview_page",
    "run_previews",
    "settled_preview",
    "PrivacyStore",
    "SuppressionList",
    "access_document",
    "create_privacy_jobs",
    "list_privacy_jobs",
    "run_privacy_jobs",
    "CLAIM_GRACE_MS",
    "CursorFormat",
    "DeltaRows",
    "JOB_CURSOR",
    "JOB_TABLE_SCHEMA",
    "JobHandle",
    "JobNotFound",
    "JobStore",
    "Lease",
    "LostJob",
    "RELEASE_WAIT_S",
    "RUNNER_STOPPED",
    "RunnerLoop",
    "SCHEDULE_TABLE_SCHEMA",
    "SCHEDULE_CURSOR",
    "SEGMENT_CURSOR",
    "SEGMENT_TABLE_SCHEMA",
    "ScheduleNotFound",
    "ScheduleStore",
    "SegmentConflict",
    "SegmentNotFound",
    "SegmentStore",
    "SparkFactory",
    "StatusConflict",
    "advance_watermark",
    "all_of",
    "any_of",
    "batches_committed",
    "before",
    "below",
    "cancel_job",
    "check_new_expression",
    "claim",
    "create_due_jobs",
    "evaluations_of",
    "create_job",
    "replay_job",
    "explain_job",
    "create_schedule",
    "create_segment",
    "definition_policy",
    "delete_segment",
    "deployment_session",
    "equal",
    "incremental_window",
    "job_error",
    "job_row",
    "list_jobs",
    "list_schedules",
    "list_segments",
    "literal",
    "lost_runner_error",
    "new_batch_id",
    "next_runs",
    "new_record",
    "one_of",
    "cursor_page",
    "page_document",
    "previous_run_active",
    "reap_lost_jobs",
    "retry_commits",
    "run_job",
    "run_pending",
    "runner_id",
    "tenant",
    "update_segment",
    "validate_expression",
]
