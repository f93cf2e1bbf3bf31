"""The planner: a job definition checked against the config and the lake, and compiled into the
export plan the engine runs (plain data, no Spark)."""

from __future__ import annotations

from jobs.planner.build import (
    Resolved,
    build_plan,
    check_job,
    dependency_order,
    evaluation_only_plan,
    evaluation_plan,
    evaluation_problems,
    event_plan,
    pinned,
    resolve,
    resolve_policy,
    segment_job_plan,
    segment_warnings,
    snapshots,
    stitch_plan,
)
from jobs.planner.explain import (
    explain_plan,
)
from jobs.planner.lake import (
    Schemas,
    event_sources,
    gone_versions,
    input_versions,
    member_segments,
    merged_schema,
    profile_sources,
)
from jobs.planner.plan import (
    PREVIEW_SEGMENT,
    ConsentRule,
    EvaluatedSegment,
    EvaluationPlan,
    EventPlan,
    EventSource,
    ExportPlan,
    PreviewPlan,
    ProfileSource,
    SegmentSpec,
    StitchPlan,
)
from jobs.planner.previews import checked_expression, preview_plan, preview_policy

__all__ = [
    "ConsentRule",
    "EvaluatedSegment",
    "EvaluationPlan",
    "EventPlan",
    "EventSource",
    "ExportPlan",
    "PREVIEW_SEGMENT",
    "PreviewPlan",
    "ProfileSource",
    "Resolved",
    "Schemas",
    "SegmentSpec",
    "StitchPlan",
    "build_plan",
    "check_job",
    "checked_expression",
    "dependency_order",
    "evaluation_only_plan",
    "evaluation_plan",
    "evaluation_problems",
    "event_plan",
    "event_sources",
    "explain_plan",
    "gone_versions",
    "input_versions",
    "member_segments",
    "merged_schema",
    "pinned",
    "preview_plan",
    "preview_policy",
    "profile_sources",
    "resolve",
    "resolve_policy",
    "segment_job_plan",
    "segment_warnings",
    "snapshots",
    "stitch_plan",
]
