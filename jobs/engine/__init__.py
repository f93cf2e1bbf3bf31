"""The Spark engine: every module that touches Spark. It runs an export plan (jobs.planner) and knows
nothing of the job table or the shells; this face is what the layers above and the tests use."""

from __future__ import annotations

from jobs.engine import audience, export, mirror, probe, segments
from jobs.engine.class_archive import (
    archive_options,
    build_archive,
)
from jobs.engine.columns import (
    BATCH,
    DATASET,
    IDENTITY,
    IDS,
    KEY_ID,
    KEY_NS,
    MEMBERSHIP,
    REJECT,
    segment_column,
)
from jobs.engine.conform import (
    spark_type,
)
from jobs.engine.conversion import (
    profile_fragments,
)
from jobs.engine.errors import (
    is_analysis_error,
    spark_message,
)
from jobs.engine.evaluation import (
    Scope,
    condition,
    evaluate,
    evaluated_membership,
    event_count_column,
    flattened,
    like,
    unflattened,
    writeback_rows,
)
from jobs.engine.events import (
    EVENT_IDENTITIES,
    EVENTS,
    events_by_key,
    keyed_events,
    load_events,
)
from jobs.engine.export import (
    ExportResult,
    profiles_of,
    rejected_examples,
    run_export,
)
from jobs.engine.identities import (
    UNROLLED_NAMESPACES,
    key_columns,
    with_identities,
)
from jobs.engine.inputs import (
    union_all,
)
from jobs.engine.jars import (
    MAVEN_CENTRAL,
    SCALA_VERSION,
    artifact_url,
    delta_coordinates,
    delta_jars,
    fetch_jars,
    jar_file_name,
    jars_dir,
)
from jobs.engine.jobgroup import (
    SparkJobGroup,
)
from jobs.engine.merge import (
    keyed_fragments,
    load_fragments,
    merge_profiles,
)
from jobs.engine.metrics import (
    ExportCounters,
    ExportedCounts,
    observed,
)
from jobs.engine.previews import (
    PreviewResult,
    run_preview,
)
from jobs.engine.privacy import (
    delete_marker,
)
from jobs.engine.probe import (
    FragmentProbe,
    probe_fragments,
)
from jobs.engine.projection import (
    project,
    projected_columns,
)
from jobs.engine.segmentation import (
    SegmentationResult,
    run_segmentation,
)
from jobs.engine.segments import (
    any_segment,
    candidate_filter,
    is_narrow,
    select_members,
    tag_batches,
)
from jobs.engine.session import (
    DRIVER_CONF,
    EMBEDDED_CONF,
    EMBEDDED_TUNING,
    REQUIRED_CONF,
    SUBMITTED_TUNING,
    build_session,
    session_for,
)
from jobs.engine.sink import (
    DestinationConflict,
    already_committed,
    write_batches,
    writeback_committed,
)
from jobs.engine.stitching import (
    DST,
    LABEL,
    NODE,
    SIZE,
    SRC,
    GraphDidNotConverge,
    connected_components,
    converged,
    links,
)

__all__ = [
    "audience",
    "mirror",
    "archive_options",
    "build_archive",
    "writeback_committed",
    "SegmentationResult",
    "run_segmentation",
    "PreviewResult",
    "run_preview",
    "DRIVER_CONF",
    "MAVEN_CENTRAL",
    "SCALA_VERSION",
    "artifact_url",
    "delta_jars",
    "fetch_jars",
    "jar_file_name",
    "jars_dir",
    "profile_fragments",
    "EMBEDDED_CONF",
    "EMBEDDED_TUNING",
    "REQUIRED_CONF",
    "SUBMITTED_TUNING",
    "BATCH",
    "DST",
    "DestinationConflict",
    "EVENTS",
    "EVENT_IDENTITIES",
    "ExportCounters",
    "ExportResult",
    "ExportedCounts",
    "FragmentProbe",
    "GraphDidNotConverge",
    "DATASET",
    "IDENTITY",
    "IDS",
    "KEY_ID",
    "KEY_NS",
    "LABEL",
    "MEMBERSHIP",
    "NODE",
    "REJECT",
    "SIZE",
    "SRC",
    "Scope",
    "SparkJobGroup",
    "UNROLLED_NAMESPACES",
    "already_committed",
    "any_segment",
    "build_session",
    "candidate_filter",
    "condition",
    "like",
    "rejected_examples",
    "connected_components",
    "converged",
    "delta_coordinates",
    "evaluate",
    "evaluated_membership",
    "event_count_column",
    "events_by_key",
    "export",
    "flattened",
    "is_analysis_error",
    "is_narrow",
    "key_columns",
    "keyed_events",
    "keyed_fragments",
    "links",
    "load_events",
    "load_fragments",
    "merge_profiles",
    "observed",
    "probe",
    "probe_fragments",
    "profiles_of",
    "project",
    "projected_columns",
    "run_export",
    "delete_marker",
    "segment_column",
    "segments",
    "select_members",
    "session_for",
    "spark_message",
    "spark_type",
    "tag_batches",
    "unflattened",
    "union_all",
    "with_identities",
    "write_batches",
    "writeback_rows",
]
