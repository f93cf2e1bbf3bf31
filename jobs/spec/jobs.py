"""The job definition (create request) and the job record (docs/reference/job-definition.md,
docs/reference/job-record.md).

Definitions are `Strict`: `parse_definition` turns every problem into a `Problem`
with the JSON path of the bad value, so a user sees all of them at once. Records
hold the definition's parts as the same typed models, and change only through
validated copies (`Record.updated`).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from jobs.spec.errors import RequestRejected
from jobs.spec.models import Record, SchemaRef, Strict
from jobs.spec.privacy import AppliedConsent, ConsentPolicy
from jobs.spec.segments import SegmentSnapshot
from jobs.spec.times import Timestamp


class SegmentStatus(StrEnum):
    REALIZED = "realized"
    EXISTING = "existing"
    EXITED = "exited"


DEFAULT_STATUSES = (SegmentStatus.REALIZED, SegmentStatus.EXISTING)


def _statuses(value: Any) -> Any:
    # The seeds show both "status": ["exited"] and "status": "exited".
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [_status(v) for v in value]
    return value


def _status(value: Any) -> Any:
    if isinstance(value, SegmentStatus) or not isinstance(value, str):
        return value
    if value not in SegmentStatus._value2member_map_:
        raise ValueError(f"unknown status {value!r}; use realized, existing or exited")
    return SegmentStatus(value)


class SegmentFilter(Strict):
    segment_id: str = Field(min_length=1)
    segment_ns: str = Field(default="ups", min_length=1)
    status: Annotated[list[SegmentStatus], BeforeValidator(_statuses)] = Field(
        default_factory=lambda: list(DEFAULT_STATUSES), min_length=1
    )

    @field_validator("status")
    @classmethod
    def _distinct(cls, value: list[SegmentStatus]) -> list[SegmentStatus]:
        if len(set(value)) != len(value):
            raise ValueError("lists a status twice")
        return value


class TimeWindow(Strict):
    start_time: Timestamp | None = None
    end_time: Timestamp | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.start_time and self.end_time and self.start_time > self.end_time:
            raise ValueError("startTime is after endTime")
        return self


class ExportFilter(Strict):
    segments: list[SegmentFilter] | None = None
    segment_qualification_time: TimeWindow | None = None
    from_ingest_timestamp: Timestamp | None = None
    empty_profiles: bool = False

    @field_validator("segments")
    @classmethod
    def _segments(cls, value: list[SegmentFilter] | None) -> list[SegmentFilter] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("must list at least one segment, or be left out to export every profile")
        seen = set()
        for segment in value:
            ref = (segment.segment_ns, segment.segment_id)
            if ref in seen:
                raise ValueError(f"segment {ref[1]!r} in namespace {ref[0]!r} is listed twice")
            seen.add(ref)
        return value


class IngestWindow(Strict):
    from_ingest_timestamp: Timestamp | None = None
    to_ingest_timestamp: Timestamp | None = None

    @model_validator(mode="after")
    def _ordered(self) -> IngestWindow:
        low, high = self.from_ingest_timestamp, self.to_ingest_timestamp
        if low and high and low > high:
            raise ValueError("fromIngestTimestamp is after toIngestTimestamp")
        return self


_PATH = re.compile(r"^[^.\s,]+(\.[^.\s,]+)*$")


def parse_field_list(text: str) -> list[tuple[str, ...]]:
    """'a.b, c' -> [('a', 'b'), ('c',)]; raises ValueError naming a malformed entry."""
    paths = []
    for raw in text.split(","):
        entry = raw.strip()
        if not _PATH.match(entry):
            raise ValueError(f"{entry!r} is not a dot path such as personalEmail.address")
        paths.append(tuple(entry.split(".")))
    return paths


def _field_list(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            return None  # the seeds: "if left empty, every field is exported"
        parse_field_list(value)
    return value


FieldList = Annotated[str | None, BeforeValidator(_field_list)]


class EventList(Strict):
    fields: FieldList | None = None
    filter: IngestWindow | None = None


class AdditionalFields(Strict):
    event_list: EventList | None = None


class Destination(Strict):
    dataset_id: str = Field(min_length=1)
    segment_per_batch: bool = False

    @model_validator(mode="before")
    @classmethod
    def _data_set_id(cls, value: Any) -> Any:
        # The seeds' own per-segment record spells it dataSetId; a client echoing it back means datasetId.
        if not isinstance(value, dict) or "dataSetId" not in value:
            return value
        spelled = {**value}
        other = spelled.pop("dataSetId")
        if "datasetId" in spelled and spelled["datasetId"] != other:
            raise ValueError("datasetId and dataSetId name two datasets: give one of them")
        spelled["datasetId"] = other
        return spelled


class MergePolicyRef(Strict):
    id: str = Field(min_length=1)
    version: int = Field(ge=1)


class EvaluationInfo(Strict):
    segmentation: bool = False


class JobDefinition(Strict):
    """The body of POST /export/jobs."""

    fields: FieldList | None = None
    merge_policy: MergePolicyRef | None = None
    filter: ExportFilter = Field(default_factory=ExportFilter)
    additional_fields: AdditionalFields | None = None
    destination: Destination
    schema_: SchemaRef = Field(alias="schema")
    evaluation_info: EvaluationInfo = Field(default_factory=EvaluationInfo)
    # Beyond the seed: a consent policy of the job's own, on top of the destination's (privacy.md).
    consent: ConsentPolicy | None = None


class ReplayDestination(Strict):
    dataset_id: str = Field(min_length=1)


class ReplayRequest(Strict):
    """A replay's request (`POST /export/jobs/{id}/replay`): the destination it writes to."""

    destination: ReplayDestination


def parse_definition(body: str | bytes | dict[str, Any]) -> JobDefinition:
    """Validate a create request, raising RequestRejected with every problem."""
    definition = JobDefinition.parse(body)
    if definition.destination.segment_per_batch and not definition.filter.segments:
        raise RequestRejected.at(
            "destination.segmentPerBatch",
            "is true but filter.segments is empty: name the segments to give each its own batch",
        )
    return definition


# ---------------------------------------------------------------- record


class JobStatus(StrEnum):
    NEW = "NEW"
    PROCESSING = "PROCESSING"
    CANCELLING = "CANCELLING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)



class Batch(Record):
    segment_id: str
    segment_ns: str
    status: list[SegmentStatus]
    batch_id: str


class RecordDestination(Record):
    dataset_id: str
    segment_per_batch: bool
    batch_id: str | None = None
    batches: list[Batch] | None = None

    def batch_ids(self) -> list[str]:
        if self.batches is not None:
            return [b.batch_id for b in self.batches]
        return [self.batch_id] if self.batch_id else []


class JobError(Record):
    code: str
    msg: str
    call_stack: str = ""


UNKNOWN_SEGMENT = "UNKNOWN_SEGMENT"
SEGMENT_MATCHED_NOTHING = "SEGMENT_MATCHED_NOTHING"
# A job with no `fields` leaves out the attributes its destination may not receive (data-usage labels).
DATA_USAGE_OMITTED = "DATA_USAGE_OMITTED"


def segment_id_path(index: int) -> str:
    """The JSON path of the request's `index`th filter segment id."""
    return f"filter.segments[{index}].segmentId"


class JobWarning(Record):
    """Something the job did that is allowed but probably not meant (beyond the seed), e.g. a segment
    id nothing knows; `path` is the request's field it is about."""

    code: str
    path: str
    msg: str


class TimeSpan(Record):
    start_time_in_ms: int
    end_time_in_ms: int | None = None
    total_time_in_ms: int | None = None

    def finish(self, end_ms: int) -> TimeSpan:
        return TimeSpan(
            start_time_in_ms=self.start_time_in_ms,
            end_time_in_ms=end_ms,
            total_time_in_ms=end_ms - self.start_time_in_ms,
        )


def hashed_id(value: str) -> str:
    """An identity id as a record's examples show it by default (Config.example_ids): a person's id
    is not something a job record should carry, but the same id always reads the same."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


class RejectedRecord(Record):
    dataset_id: str
    reason: str
    record: str


class ExcludedGraph(Record):
    """A component of the identity graph too large to be a profile: its smallest identity and size."""

    namespace: str
    id: str
    size: int


class Metrics(Record):
    total_time: TimeSpan | None = None
    profile_export_time: TimeSpan | None = None
    total_exported_profile_counter: int | None = None
    exported_profile_by_namespace_counter: dict[str, int] | None = None
    # segment namespace -> segment id -> rows exported for it (mirrors segmentMembership).
    exported_profile_by_segment_counter: dict[str, dict[str, int]] | None = None
    rejected_record_counter: int | None = None
    rejected_records: list[RejectedRecord] | None = None
    # Evaluating jobs: per evaluated segment, profiles realized or existing after the evaluation,
    # and profiles by new status (as AEP's segment jobs report them).
    segmented_profile_counter: dict[str, int] | None = None
    segmented_profile_by_status_counter: dict[str, dict[str, int]] | None = None
    # Segment jobs, as AEP's: the time of the evaluation and write-back, the profiles evaluated, and per
    # segment the qualified profiles by identity namespace.
    profile_segmentation_time: TimeSpan | None = None
    total_profiles: int | None = None
    segmented_profile_by_namespace_counter: dict[str, dict[str, int]] | None = None
    # identityGraph pdg: rounds the graph took to converge; components over maxIdentitiesPerGraph
    # (not profiles), and up to 10 of them.
    identity_graph_rounds: int | None = None
    excluded_graph_counter: int | None = None
    excluded_graphs: list[ExcludedGraph] | None = None
    # Consent policies (consentPolicies): profiles that qualified but whose consent left them out;
    # per-segment jobs also by segment (namespace -> segment id -> profiles), as exported ones.
    consent_excluded_profile_counter: int | None = None
    consent_excluded_profile_by_segment_counter: dict[str, dict[str, int]] | None = None
    # Mirror destinations (docs/reference/mirrors.md): the mirror rows (profiles, or segment and profile
    # pairs) the job's MERGE inserted, updated and deleted, and the Delta version it committed.
    inserted_profile_counter: int | None = None
    updated_profile_counter: int | None = None
    deleted_profile_counter: int | None = None
    destination_version: int | None = None


class ComputeGatewayJobId(Record):
    export_job: str = ""


class ScheduleRef(Record):
    """The schedule slot a job was created for; set by the scheduler only, never from a request."""

    id: str
    slot: int  # epoch ms of the cron slot


class JobInputs(Record):
    """What a job read, fixed by its first run (beyond the seed), so that every run of the job,
    a retry too, reads the same rows and reports the same watermark."""

    # The Delta version of each profile and event dataset, by dataset id; None: it had no table yet.
    versions: dict[str, int | None]
    # Where the next run of an incremental schedule starts: the latest `_ingestTime` of the profile
    # fragments in those versions (µs precision), at least an evaluating job's `now`. Recorded when the
    # job succeeds; it depends on the versions only, so every run of the job finds the same one.
    watermark: Timestamp | None = None


class RecordEvaluation(Record):
    """`evaluationInfo` as the record keeps it: the request's flag, and the instant the first run fixed."""

    segmentation: bool = False
    # The evaluation instant `now` (epoch ms), fixed by the job's first run so that a retry
    # evaluates the same way.
    evaluation_time: int | None = None


class JobRecord(Record):
    id: int
    # BATCH: an export job; SEGMENTATION: a segment job (spec/segment_jobs.py), which evaluates its
    # segments and writes back their memberships, and has no destination.
    job_type: Literal["BATCH", "SEGMENTATION"] = "BATCH"
    ims_org_id: str
    sandbox_name: str
    status: JobStatus
    fields: str | None = None
    schema_: SchemaRef = Field(alias="schema")
    filter: ExportFilter
    additional_fields: AdditionalFields | None = None
    merge_policy: MergePolicyRef
    evaluation_info: RecordEvaluation
    destination: RecordDestination | None = None
    profile_instance_id: str = "ups"
    errors: list[JobError] = Field(default_factory=list)
    warnings: list[JobWarning] | None = None
    metrics: Metrics = Field(default_factory=Metrics)
    compute_gateway_job_id: ComputeGatewayJobId = Field(default_factory=ComputeGatewayJobId)
    # What the run is doing now (e.g. "exporting: 12/40 tasks"); beyond the seed, for watching a job.
    stage: str | None = None
    # Times the job was put back to NEW after its runner was lost (beyond the seed).
    retries: int | None = None
    # Evaluating jobs: the definitions of the listed segments as they were when the job was
    # created, so that every run of the job (a retry too) evaluates the same expressions.
    segment_definitions: list[SegmentSnapshot] | None = None
    # Set for the jobs that a schedule creates (beyond the seed).
    schedule: ScheduleRef | None = None
    inputs: JobInputs | None = None
    # The consent policies the job applies: its destination's and its own (beyond the seed).
    consent_policies: list[AppliedConsent] | None = None
    # A replay (docs/reference/mirrors.md#replays): the job it runs again, at the table versions that job
    # read (its `inputs`), into another destination; it writes no memberships back (beyond the seed).
    replay_of: int | None = None
    creation_time: int
    update_time: int
    request_id: str

    @model_validator(mode="after")
    def _kind(self) -> JobRecord:
        if (self.destination is None) != self.is_segment_job:
            raise ValueError("an export job has a destination, and a segment job none")
        return self

    @property
    def is_segment_job(self) -> bool:
        return self.job_type == "SEGMENTATION"

    @property
    def export_destination(self) -> RecordDestination:
        """An export job's destination (a segment job has none)."""
        assert self.destination is not None, f"job {self.id} is a segment job: it has no destination"
        return self.destination

    def definition(self) -> JobDefinition:
        """The definition an export job's record was created from."""
        destination = self.export_destination
        body = {
            "fields": self.fields,
            "mergePolicy": self.merge_policy,
            "filter": self.filter,
            "additionalFields": self.additional_fields,
            "destination": Destination(datasetId=destination.dataset_id,
                                       segmentPerBatch=destination.segment_per_batch),
            "schema": self.schema_,
            "evaluationInfo": EvaluationInfo(segmentation=self.evaluates),
            "consent": next((c.policy() for c in self.consent_policies or () if c.source == "job"), None),
        }
        return JobDefinition.model_validate({k: v for k, v in body.items() if v is not None})

    @property
    def evaluates(self) -> bool:
        return self.evaluation_info.segmentation

    @property
    def unknown_segments(self) -> set[tuple[str, str]]:
        """(namespace, id) of the filter segments that nothing knew when the job was created."""
        paths = {w.path for w in self.warnings or () if w.code == UNKNOWN_SEGMENT}
        return {(s.segment_ns, s.segment_id) for i, s in enumerate(self.filter.segments or ())
                if segment_id_path(i) in paths}

    @property
    def exported_rows(self) -> int | None:
        """The rows the job wrote: one per exported profile, or in per-segment batches one per profile
        and segment it matched; None before a run counted them."""
        by_segment = self.metrics.exported_profile_by_segment_counter
        if self.destination is not None and self.destination.segment_per_batch and by_segment is not None:
            return sum(n for segments in by_segment.values() for n in segments.values())
        return self.metrics.total_exported_profile_counter

    @property
    def evaluation_time(self) -> int | None:
        """The evaluation instant `now` (epoch ms), fixed by the job's first run."""
        return self.evaluation_info.evaluation_time

    def evaluated_at(self, now_ms: int) -> JobRecord:
        """An evaluating job's record with its `now` fixed (kept if an earlier run fixed it)."""
        if not self.evaluates or self.evaluation_time is not None:
            return self
        return self.updated(evaluation_info=self.evaluation_info.updated(evaluation_time=now_ms))

    def exporting_from(self, watermark: datetime) -> JobRecord:
        """The record with its filter starting after `watermark` (an incremental schedule's run)."""
        return self.updated(filter=self.filter.updated(from_ingest_timestamp=watermark))
