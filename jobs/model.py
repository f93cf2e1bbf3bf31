"""The job definition (create request) and the job record (README, "A job definition", "What a run records").

Models are strict: camelCase keys, unknown keys rejected, no silent coercion of
"true" into true. `parse_definition` turns every problem into a `Problem` with
the JSON path of the bad value, so a user sees all of them at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from http import HTTPStatus
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

# ---------------------------------------------------------------- problems


class Problem(BaseModel):
    """One thing wrong with a request, located by its JSON path."""

    path: str
    message: str


class ProblemDocument(BaseModel):
    """An error answer: the HTTP API's body and the CLI's output (RFC 9457's fields, and `errors`)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[Problem]


def problem_document(status: int, detail: str, errors: Sequence[Problem] = ()) -> dict[str, Any]:
    return ProblemDocument(type="about:blank", title=HTTPStatus(status).phrase, status=status, detail=detail,
                           errors=list(errors)).model_dump()


class RequestRejected(Exception):
    """A request that cannot be accepted; `problems` says every reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))


def json_path(loc: tuple[int | str, ...]) -> str:
    """('filter', 'segments', 0, 'segmentId') -> 'filter.segments[0].segmentId'."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "$"


# Pydantic puts validator tags such as 'function-before[...]' into error locations.
_INTERNAL_TAG = re.compile(r"^function-(before|after|wrap|plain)\[")


def problems_from(error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(p for p in item["loc"] if isinstance(p, int) or not _INTERNAL_TAG.match(p))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(Problem(path=json_path(loc), message=message))
    return problems


# ---------------------------------------------------------------- timestamps

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_rfc3339(value: Any) -> datetime:
    """An RFC 3339 string with a zone (or an aware datetime) as a UTC datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp needs a time zone")
        return value.astimezone(UTC)
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError(
            f"{value!r} is not an RFC 3339 timestamp with a zone, e.g. 2018-01-01T00:00:00Z"
        )
    text = value.upper()
    # Python parses at most microseconds: cut longer fractions.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError as err:
        raise ValueError(f"{value!r} is not a valid timestamp: {err}") from None


def format_rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_rfc3339),
    PlainSerializer(format_rfc3339, return_type=str),
]


# ---------------------------------------------------------------- definition


class Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        frozen=True,
    )


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
        parse_field_list(value)
    return value


FieldList = Annotated[str, BeforeValidator(_field_list)]


class EventList(Strict):
    fields: FieldList | None = None
    filter: IngestWindow | None = None


class AdditionalFields(Strict):
    event_list: EventList | None = None


class Destination(Strict):
    dataset_id: str = Field(min_length=1)
    segment_per_batch: bool = False


class SchemaRef(Strict):
    name: str = Field(min_length=1)


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


def parse_definition(body: str | bytes | dict[str, Any]) -> JobDefinition:
    """Validate a create request, raising RequestRejected with every problem."""
    try:
        if isinstance(body, dict):
            definition = JobDefinition.model_validate(body)
        else:
            definition = JobDefinition.model_validate(json_object(body))
    except ValidationError as err:
        raise RequestRejected(problems_from(err)) from None
    if definition.destination.segment_per_batch and not definition.filter.segments:
        raise RequestRejected([Problem(
            path="destination.segmentPerBatch",
            message="is true but filter.segments is empty: name the segments to give each its own batch",
        )])
    return definition


def json_object(body: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise RequestRejected([Problem(path="$", message=f"body is not valid JSON: {err}")]) from None
    if not isinstance(value, dict):
        raise RequestRejected([Problem(path="$", message="body must be a JSON object")])
    return value


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


class Record(BaseModel):
    """Lenient base for what we write ourselves: keeps camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


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
    # identityGraph pdg: rounds the graph took to converge; components over maxIdentitiesPerGraph
    # (not profiles), and up to 10 of them.
    identity_graph_rounds: int | None = None
    excluded_graph_counter: int | None = None
    excluded_graphs: list[ExcludedGraph] | None = None


class SegmentDefinition(Record):
    """A stored segment definition (README, "Segment definitions"); jobs.definitions checks the requests."""

    id: str
    name: str
    description: str | None = None
    expression: dict[str, str]  # {type: PQL, format: pql/text, value}
    merge_policy_id: str
    schema_: dict[str, str] = Field(alias="schema")
    ims_org_id: str
    sandbox_name: str
    creation_time: int
    update_time: int

    @property
    def pql(self) -> str:
        return self.expression["value"]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class DefinitionSnapshot(Record):
    """What an evaluating job keeps of a segment's definition."""

    id: str
    name: str
    expression: str  # pql/text
    merge_policy_id: str
    update_time: int

    @classmethod
    def of(cls, definition: SegmentDefinition) -> DefinitionSnapshot:
        return cls(id=definition.id, name=definition.name, expression=definition.pql,
                   merge_policy_id=definition.merge_policy_id, update_time=definition.update_time)


class ComputeGatewayJobId(Record):
    export_job: str = ""


class ScheduleRef(Record):
    """The schedule slot a job was created for; set by the scheduler only, never from a request."""

    id: str
    slot: int  # epoch ms of the cron slot


class JobRecord(Record):
    id: int
    job_type: Literal["BATCH"] = "BATCH"
    ims_org_id: str
    sandbox_name: str
    status: JobStatus
    fields: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    filter: dict[str, Any]
    additional_fields: dict[str, Any] | None = None
    merge_policy: dict[str, Any]
    evaluation_info: dict[str, Any]
    destination: RecordDestination
    profile_instance_id: str = "ups"
    errors: list[JobError] = Field(default_factory=list)
    metrics: Metrics = Field(default_factory=Metrics)
    compute_gateway_job_id: ComputeGatewayJobId = Field(default_factory=ComputeGatewayJobId)
    # What the run is doing now (e.g. "exporting: 12/40 tasks"); beyond the seed, for watching a job.
    stage: str | None = None
    # Times the job was put back to NEW after its runner was lost (beyond the seed).
    retries: int | None = None
    # Evaluating jobs: the definitions of the listed segments as they were when the job was
    # created, so that every run of the job (a retry too) evaluates the same expressions.
    segment_definitions: list[DefinitionSnapshot] | None = None
    # Set for the jobs that a schedule creates (beyond the seed).
    schedule: ScheduleRef | None = None
    creation_time: int
    update_time: int
    request_id: str

    def definition(self) -> JobDefinition:
        """The definition this record was created from."""
        body = {
            "fields": self.fields,
            "mergePolicy": self.merge_policy,
            "filter": self.filter,
            "additionalFields": self.additional_fields,
            "destination": {
                "datasetId": self.destination.dataset_id,
                "segmentPerBatch": self.destination.segment_per_batch,
            },
            "schema": self.schema_,
            "evaluationInfo": {"segmentation": self.evaluates},
        }
        return JobDefinition.model_validate({k: v for k, v in body.items() if v is not None})

    @property
    def evaluates(self) -> bool:
        return bool(self.evaluation_info.get("segmentation"))

    @property
    def evaluation_time(self) -> int | None:
        """The evaluation instant `now` (epoch ms), fixed by the job's first run."""
        value = self.evaluation_info.get("evaluationTime")
        return int(value) if value is not None else None

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def dump_definition_part(model: BaseModel | None) -> dict[str, Any] | None:
    """A definition sub-model as the record shows it: defaults filled in, camelCase."""
    if model is None:
        return None
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
