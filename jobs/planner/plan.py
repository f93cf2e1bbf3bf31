"""The export plan: what the Spark engine executes, as plain data (no Spark, no config, no job table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobs.spec import AppliedConsent, Leaf, Node, pql


@dataclass(frozen=True)
class ProfileSource:
    dataset_id: str
    path: str
    precedence: int  # 0 wins under dataSetPrecedence (-1, the segmentation dataset, above it)
    optional: bool = False  # may have no table yet, and then reads as empty (the segmentation dataset)
    version: int | None = None  # the Delta version the job reads (JobRecord.inputs); None: the latest


@dataclass(frozen=True)
class EventSource:
    dataset_id: str
    path: str
    version: int | None = None  # as ProfileSource.version


@dataclass(frozen=True)
class EventPlan:
    """Events to read: for an `events` column (projection set), to find empty profiles, and to
    count the events that meet segment conditions (`xEvent[condition].count()`)."""

    sources: tuple[EventSource, ...]
    schema: dict[str, Any]
    projection: tuple[Node, ...] | None  # None: no events column
    from_ingest: datetime | None  # exclusive; bounds the events column (and empty profiles)
    to_ingest: datetime | None  # exclusive, as the seeds say ("before")
    # Per key, the events meeting each condition are counted, whatever the window above.
    conditions: tuple[pql.Expr, ...] = ()
    before: datetime | None = None  # an evaluating job reads events ingested before its `now` only
    stitched: bool = False  # identityGraph pdg: keyed by their component, not by a primary identity


@dataclass(frozen=True)
class EvaluatedSegment:
    segment_id: str  # in namespace ups
    expression: pql.Expr


@dataclass(frozen=True)
class EvaluationPlan:
    """Segment evaluation in the export's pass, and the write-back of changed memberships."""

    now: datetime
    segments: tuple[EvaluatedSegment, ...]  # each after the listed segments its inSegment names
    writeback_path: str
    writeback_txn_app_id: str
    writeback_metadata: str
    write_back: bool = True  # a replay evaluates as its job did, and writes nothing back


@dataclass(frozen=True)
class StitchPlan:
    """The identity graph: links from every profile fragment and event of the deployment."""

    profile_sources: tuple[ProfileSource, ...]  # every profile dataset, whatever the policy's order
    event_sources: tuple[EventSource, ...]
    max_identities: int
    max_iterations: int


@dataclass(frozen=True)
class SegmentSpec:
    namespace: str
    segment_id: str
    statuses: tuple[str, ...]
    batch_id: str  # the segment's own batch, or the combined batch


@dataclass(frozen=True)
class ConsentRule:
    """A consent policy on the merged profiles: `leaf` is its merged consent attribute."""

    policy: AppliedConsent
    leaf: Leaf


@dataclass(frozen=True)
class ExportPlan:
    job_id: int
    sources: tuple[ProfileSource, ...]
    merge: str  # "timestampOrdered" or "dataSetPrecedence"
    profile_schema: dict[str, Any]
    projection: tuple[Node, ...]
    leaves: tuple[Leaf, ...]
    segments: tuple[SegmentSpec, ...]  # empty: every profile
    # The segments whose exported members the job counts: every one of per-segment batches; else
    # those the record warned nothing knew (JobRecord.unknown_segments).
    counted_segments: tuple[SegmentSpec, ...]
    qualified_from: datetime | None
    qualified_to: datetime | None
    from_ingest: datetime | None
    events: EventPlan | None
    empty_profiles: bool  # also export keys that only have events (never with segments)
    destination_path: str
    per_segment: bool
    batch_ids: tuple[str, ...]
    txn_app_id: str
    user_metadata: str
    evaluation: EvaluationPlan | None = None
    # Memberships merged for inSegment(...) only: read, never exported.
    referenced_segments: tuple[tuple[str, str], ...] = ()
    as_of: datetime | None = None  # an evaluating job reads fragments ingested before its `now` only
    stitching: StitchPlan | None = None  # identityGraph pdg: profiles are identity graph components
    # Rows in the profile sources by their Delta logs' statistics (None if unknown): a small
    # input needs no probe before its export (engine/probe.py).
    fragments: int | None = None
    hashed_example_ids: bool = True  # Config.example_ids: the record's rejectedRecords show hashed ids
    consent: tuple[ConsentRule, ...] = ()  # every one must allow a profile for it to be exported
    # Erased identities (salted SHA-256, privacy_jobs.identity_hash): records holding one are left out.
    suppressed: tuple[str, ...] = ()
    suppression_salt: str = ""
    # The destination is a mirror (config mode "mirror"): one MERGE keeps the job's current audience
    # there (engine/mirror.py) instead of an append of its batches.
    mirror: bool = False
    deletion_vectors: bool = False  # the mirror's MERGE marks rows in deletion vectors (config deletionVectors)

    @property
    def incremental(self) -> bool:
        """The job reads the profiles changed since `from_ingest` only (fromIngestTimestamp, incremental schedules)."""
        return self.from_ingest is not None

    @property
    def segment_refs(self) -> list[tuple[str, str]]:
        """Distinct (namespace, segment id) pairs, in the order the job lists them."""
        return list(dict.fromkeys((s.namespace, s.segment_id) for s in self.segments))

    @property
    def merged_segment_refs(self) -> list[tuple[str, str]]:
        """Every membership the merge takes: the listed segments', then the referenced ones'."""
        return list(dict.fromkeys([*self.segment_refs, *self.referenced_segments]))


@dataclass(frozen=True)
class PreviewPlan:
    """A preview: the export plan of one evaluated segment (PREVIEW_SEGMENT) on every profile, run
    on the keys of a hash sample only, and nothing written."""

    export: ExportPlan
    threshold: int  # a key is sampled when its hash bucket (of `buckets`) is below this
    buckets: int
    profiles: int  # the matching profiles of the sample to show


PREVIEW_SEGMENT = "_preview"  # the id the previewed expression is evaluated under
