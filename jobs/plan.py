"""The export plan: a job record resolved against the config and the lake schemas.

Plain data, no Spark. It is built twice with the same code: at creation, to
reject a job that cannot run (unknown policy, dataset or field), and at run
time, from the stored record, to drive the Spark engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobs.config import Config, MergePolicy
from jobs.model import JobDefinition, JobRecord, Problem, RequestRejected, parse_field_list
from jobs.schema import (
    EVENT_SYSTEM_COLUMNS,
    Leaf,
    Node,
    SchemaConflict,
    UnknownPath,
    merge_leaves,
    projection,
    read_delta_schema,
    union_schemas,
)


class LakeError(Exception):
    """The lake does not match the config (missing table, conflicting column types)."""


@dataclass(frozen=True)
class ProfileSource:
    dataset_id: str
    path: str
    precedence: int  # 0 wins under dataSetPrecedence; unused for timestampOrdered


@dataclass(frozen=True)
class EventSource:
    dataset_id: str
    path: str


@dataclass(frozen=True)
class EventPlan:
    """Events to read: to add an `events` column (projection set) and/or to find empty profiles."""

    sources: tuple[EventSource, ...]
    schema: dict[str, Any]
    projection: tuple[Node, ...] | None  # None: no events column
    from_ingest: datetime | None  # exclusive
    to_ingest: datetime | None  # inclusive


@dataclass(frozen=True)
class SegmentSpec:
    namespace: str
    segment_id: str
    statuses: tuple[str, ...]
    batch_id: str  # the segment's own batch, or the combined batch


@dataclass(frozen=True)
class ExportPlan:
    job_id: int
    sources: tuple[ProfileSource, ...]
    merge: str  # "timestampOrdered" or "dataSetPrecedence"
    profile_schema: dict[str, Any]
    projection: tuple[Node, ...]
    leaves: tuple[Leaf, ...]
    segments: tuple[SegmentSpec, ...]  # empty: every profile
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

    @property
    def segment_refs(self) -> list[tuple[str, str]]:
        """Distinct (namespace, segment id) pairs, in the order the job lists them."""
        return list(dict.fromkeys((s.namespace, s.segment_id) for s in self.segments))


def resolve_policy(definition: JobDefinition, config: Config) -> MergePolicy:
    ref = definition.merge_policy
    if ref is None:
        return config.default_policy()
    policy = config.policy(ref.id, ref.version)
    if policy is None:
        declared = ", ".join(f"{p.id} v{p.version}" for p in config.merge_policies)
        raise RequestRejected([Problem(
            path="mergePolicy",
            message=f"unknown merge policy {ref.id!r} version {ref.version}; declared: {declared}",
        )])
    return policy


def profile_sources(policy: MergePolicy, config: Config) -> list[ProfileSource]:
    if policy.attribute_merge == "dataSetPrecedence":
        by_id = {d.id: d for d in config.profile_datasets}
        return [ProfileSource(i, config.resolve(by_id[i].path), n) for n, i in enumerate(policy.order)]
    return [ProfileSource(d.id, config.resolve(d.path), 0) for d in config.profile_datasets]


def merged_schema(kind: str, sources: list[ProfileSource] | list[EventSource]) -> dict[str, Any]:
    """The union of the sources' Delta schemas; `kind` is "profile" or "event"."""
    schemas = []
    for source in sources:
        schema = read_delta_schema(source.path)
        if schema is None:
            raise LakeError(f"{kind} dataset {source.dataset_id!r} has no Delta table at {source.path}")
        schemas.append((source.dataset_id, schema))
    try:
        return union_schemas(schemas)
    except SchemaConflict as err:
        raise LakeError(f"{kind} datasets disagree on a column type: {err}") from None


def event_plan(definition: JobDefinition, config: Config) -> EventPlan | None:
    """What to read of the event datasets, or None when the job needs no events."""
    event_list = definition.additional_fields.event_list if definition.additional_fields else None
    empty = definition.filter.empty_profiles and not definition.filter.segments
    if not config.event_datasets or (event_list is None and not empty):
        return None
    sources = [EventSource(d.id, config.resolve(d.path)) for d in config.event_datasets]
    schema = merged_schema("event", sources)
    nodes = None
    window = event_list.filter if event_list and event_list.filter else None
    if event_list is not None:
        paths = parse_field_list(event_list.fields) if event_list.fields else None
        nodes = projection(schema, paths, EVENT_SYSTEM_COLUMNS)
    return EventPlan(
        sources=tuple(sources),
        schema=schema,
        projection=nodes,
        from_ingest=(window.from_ingest_timestamp if window and window.from_ingest_timestamp
                     else definition.filter.from_ingest_timestamp),
        to_ingest=window.to_ingest_timestamp if window else None,
    )


def check_definition(definition: JobDefinition, config: Config) -> None:
    """Reject what the config or the lake make impossible, every problem at once."""
    problems: list[Problem] = []
    try:
        policy = resolve_policy(definition, config)
    except RequestRejected as err:
        problems += err.problems
        policy = config.default_policy()
    destination = config.destination(definition.destination.dataset_id)
    if destination is None:
        declared = ", ".join(d.id for d in config.destination_datasets)
        problems.append(Problem(
            path="destination.datasetId",
            message=f"unknown dataset {definition.destination.dataset_id!r}; declared: {declared}",
        ))
    elif definition.schema_.name != destination.schema_name:
        problems.append(Problem(
            path="schema.name",
            message=f"dataset {destination.id!r} has schema {destination.schema_name!r}, "
            f"not {definition.schema_.name!r}",
        ))
    profile = merged_schema("profile", profile_sources(policy, config))
    try:
        projection(profile, parse_field_list(definition.fields) if definition.fields else None)
    except UnknownPath as err:
        problems.append(Problem(path="fields", message=str(err)))
    event_list = definition.additional_fields.event_list if definition.additional_fields else None
    if event_list is not None and not config.event_datasets:
        problems.append(Problem(path="additionalFields.eventList",
                                message="the config declares no event datasets to export events from"))
    try:
        event_plan(definition, config)
    except UnknownPath as err:
        problems.append(Problem(path="additionalFields.eventList.fields", message=str(err)))
    problems += unsupported(definition)
    if problems:
        raise RequestRejected(problems)


def unsupported(definition: JobDefinition) -> list[Problem]:
    """Options the engine cannot honour yet: rejected, never silently ignored."""
    if not definition.evaluation_info.segmentation:
        return []
    return [Problem(
        path="evaluationInfo.segmentation",
        message="segment re-evaluation is not supported yet; set it to false to export "
        "the memberships already in the profile store",
    )]


def build_plan(record: JobRecord, config: Config) -> ExportPlan:
    """The plan for a stored job record."""
    definition = record.definition()
    policy = resolve_policy(definition, config)
    sources = profile_sources(policy, config)
    profile = merged_schema("profile", sources)
    nodes = projection(profile, parse_field_list(definition.fields) if definition.fields else None)
    destination = config.destination(definition.destination.dataset_id)
    if destination is None:
        raise LakeError(f"destination dataset {definition.destination.dataset_id!r} is no longer declared")
    dest = record.destination
    if dest.batches is not None:
        segments = tuple(
            SegmentSpec(b.segment_ns, b.segment_id, tuple(s.value for s in b.status), b.batch_id)
            for b in dest.batches
        )
    else:
        combined = dest.batch_ids()[0]
        segments = tuple(
            SegmentSpec(s.segment_ns, s.segment_id, tuple(x.value for x in s.status), combined)
            for s in definition.filter.segments or ()
        )
    window = definition.filter.segment_qualification_time
    return ExportPlan(
        job_id=record.id,
        sources=tuple(sources),
        merge=policy.attribute_merge,
        profile_schema=profile,
        projection=nodes,
        leaves=tuple(merge_leaves(nodes)),
        segments=segments,
        qualified_from=window.start_time if window else None,
        qualified_to=window.end_time if window else None,
        from_ingest=definition.filter.from_ingest_timestamp,
        events=event_plan(definition, config),
        empty_profiles=definition.filter.empty_profiles and not segments,
        destination_path=config.resolve(destination.path),
        per_segment=dest.segment_per_batch,
        batch_ids=tuple(dest.batch_ids()),
        txn_app_id=f"export-jobs-{config.deployment}-job-{record.id}",
        user_metadata=json.dumps({"jobId": record.id, "batchIds": dest.batch_ids()}),
    )
