"""The export plan: a job record resolved against the config and the lake schemas.

Plain data, no Spark. It is built twice with the same code: at creation, to
reject a job that cannot run (unknown policy, dataset, field or segment
definition), and at run time, from the stored record, to drive the Spark engine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobs import pql
from jobs.config import Config, MergePolicy
from jobs.model import (
    DefinitionSnapshot,
    JobDefinition,
    JobRecord,
    Problem,
    RequestRejected,
    SegmentDefinition,
    parse_field_list,
)
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
    precedence: int  # 0 wins under dataSetPrecedence (-1, the segmentation dataset, above it)
    optional: bool = False  # may have no table yet, and then reads as empty (the segmentation dataset)


@dataclass(frozen=True)
class EventSource:
    dataset_id: str
    path: str


@dataclass(frozen=True)
class EventPlan:
    """Events to read: for an `events` column (projection set), to find empty profiles, and to
    count the events that meet segment conditions (`xEvent[condition].count()`)."""

    sources: tuple[EventSource, ...]
    schema: dict[str, Any]
    projection: tuple[Node, ...] | None  # None: no events column
    from_ingest: datetime | None  # exclusive; bounds the events column (and empty profiles)
    to_ingest: datetime | None  # inclusive
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
    evaluation: EvaluationPlan | None = None
    # Memberships merged for inSegment(...) only: read, never exported.
    referenced_segments: tuple[tuple[str, str], ...] = ()
    as_of: datetime | None = None  # an evaluating job reads fragments ingested before its `now` only
    stitching: StitchPlan | None = None  # identityGraph pdg: profiles are identity graph components

    @property
    def segment_refs(self) -> list[tuple[str, str]]:
        """Distinct (namespace, segment id) pairs, in the order the job lists them."""
        return list(dict.fromkeys((s.namespace, s.segment_id) for s in self.segments))

    @property
    def merged_segment_refs(self) -> list[tuple[str, str]]:
        """Every membership the merge takes: the listed segments', then the referenced ones'."""
        return list(dict.fromkeys([*self.segment_refs, *self.referenced_segments]))


def resolve_policy(definition: JobDefinition, config: Config,
                   definitions: Mapping[str, SegmentDefinition] | None = None) -> MergePolicy:
    """The job's merge policy: the one it names, else (evaluating) its segments', else the default."""
    ref = definition.merge_policy
    if ref is None and definition.evaluation_info.segmentation and definitions:
        named = {definitions[s.segment_id].merge_policy_id for s in definition.filter.segments or ()
                 if s.segment_id in definitions}
        if len(named) > 1:
            raise RequestRejected([Problem(
                path="mergePolicy",
                message=f"the segments' definitions use different merge policies ({', '.join(sorted(named))}): "
                "name the one to evaluate and export with",
            )])
        found = config.latest_policy(named.pop()) if named else None
        if named and found is None:
            raise RequestRejected([Problem(path="mergePolicy", message="the segments' merge policy is no longer "
                                                                      "declared: name one")])
        return found or config.default_policy()
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
    """The policy's profile datasets, and the segmentation dataset under every policy.

    The segmentation dataset holds only memberships that evaluation wrote: under
    dataSetPrecedence it ranks above the policy's order (its fragments, compared with
    each other by ingest time, are the evaluated state of the segments they name).
    """
    segmentation = config.segmentation_dataset
    if policy.attribute_merge == "dataSetPrecedence":
        by_id = {d.id: d for d in config.profile_datasets}
        sources = [ProfileSource(i, config.resolve(by_id[i].path), n) for n, i in enumerate(policy.order)]
        if segmentation is not None:
            sources.append(ProfileSource(segmentation, config.resolve(by_id[segmentation].path), -1, optional=True))
        return sources
    return [ProfileSource(d.id, config.resolve(d.path), 0, optional=d.id == segmentation)
            for d in config.profile_datasets]


def merged_schema(kind: str, sources: list[ProfileSource] | list[EventSource]) -> dict[str, Any]:
    """The union of the sources' Delta schemas; `kind` is "profile" or "event"."""
    schemas = []
    for source in sources:
        schema = read_delta_schema(source.path)
        if schema is None:
            if isinstance(source, ProfileSource) and source.optional:
                continue
            raise LakeError(f"{kind} dataset {source.dataset_id!r} has no Delta table at {source.path}")
        schemas.append((source.dataset_id, schema))
    try:
        return union_schemas(schemas)
    except SchemaConflict as err:
        raise LakeError(f"{kind} datasets disagree on a column type: {err}") from None


def event_sources(config: Config) -> list[EventSource]:
    return [EventSource(d.id, config.resolve(d.path)) for d in config.event_datasets]


@dataclass(frozen=True)
class Schemas:
    """What segment expressions are checked against: a policy's merged profile schema and the
    merged event schema (None without event datasets)."""

    profile: dict[str, Any]
    events: dict[str, Any] | None

    @classmethod
    def of(cls, policy: MergePolicy, config: Config) -> Schemas:
        events = merged_schema("event", event_sources(config)) if config.event_datasets else None
        return cls(merged_schema("profile", profile_sources(policy, config)), events)

    def checked(self, text: str, segments: set[str] | None = None) -> tuple[pql.Expr, pql.Needs]:
        """A definition's expression, parsed and checked; raises PqlError."""
        expr = pql.parse(text)
        return expr, pql.check(text, expr, self.profile, self.events, segments)


def event_plan(definition: JobDefinition, config: Config, conditions: tuple[pql.Expr, ...] = (),
               before: datetime | None = None, stitched: bool = False) -> EventPlan | None:
    """What to read of the event datasets, or None when the job needs no events."""
    event_list = definition.additional_fields.event_list if definition.additional_fields else None
    empty = definition.filter.empty_profiles and not definition.filter.segments
    if not config.event_datasets or (event_list is None and not empty and not conditions):
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
        conditions=conditions,
        before=before,
        stitched=stitched,
    )


def check_definition(definition: JobDefinition, config: Config,
                     definitions: Mapping[str, SegmentDefinition] | None = None) -> MergePolicy:
    """Reject what the config or the lake make impossible, every problem at once; returns the
    job's merge policy. `definitions`: the scope's segment definitions, for an evaluating job."""
    problems: list[Problem] = []
    try:
        policy = resolve_policy(definition, config, definitions)
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
    problems += evaluation_problems(definition, config, definitions or {}, policy)
    if problems:
        raise RequestRejected(problems)
    return policy


def evaluation_problems(definition: JobDefinition, config: Config, definitions: Mapping[str, SegmentDefinition],
                        policy: MergePolicy) -> list[Problem]:
    """What keeps an evaluating job from evaluating: no write-back dataset, no segments, a listed
    segment without a definition, or a definition that does not fit the job's merge policy."""
    if not definition.evaluation_info.segmentation:
        return []
    problems = []
    schemas = Schemas.of(policy, config)
    if config.segmentation_dataset is None:
        problems.append(Problem(path="evaluationInfo.segmentation",
                                message="the config names no segmentationDataset to write evaluated memberships to"))
    if not definition.filter.segments:
        problems.append(Problem(path="evaluationInfo.segmentation",
                                message="evaluates the segments filter.segments lists: name at least one"))
    for i, segment in enumerate(definition.filter.segments or ()):
        path = f"filter.segments[{i}].segmentId"
        found = definitions.get(segment.segment_id) if segment.segment_ns == "ups" else None
        if found is None:
            problems.append(Problem(path=path, message=f"no segment definition {segment.segment_id!r} in "
                                    f"namespace ups of this org and sandbox, to evaluate"))
            continue
        try:
            schemas.checked(found.pql)
        except pql.PqlError as err:
            problems.append(Problem(path=path, message=f"its definition does not fit merge policy "
                                    f"{policy.id!r}: {err}"))
    return problems


def snapshots(definition: JobDefinition, definitions: Mapping[str, SegmentDefinition]) -> list[DefinitionSnapshot]:
    """What an evaluating job keeps of its segments' definitions (check_definition has checked them)."""
    return [DefinitionSnapshot.of(definitions[s.segment_id]) for s in definition.filter.segments or ()]


def evaluation_plan(record: JobRecord, config: Config, policy: MergePolicy
                    ) -> tuple[EvaluationPlan, pql.Needs]:
    """The evaluation of an evaluating job's segments, and everything its expressions read."""
    assert record.segment_definitions is not None and record.evaluation_time is not None
    assert config.segmentation_dataset is not None
    expressions: dict[str, pql.Expr] = {}
    leaves: dict[tuple[str, ...], Any] = {}
    references: dict[str, tuple[str, ...]] = {}
    conditions: list[pql.Expr] = []
    schemas = Schemas.of(policy, config)
    for snapshot in record.segment_definitions:
        try:
            expr, needs = schemas.checked(snapshot.expression)
        except pql.PqlError as err:
            raise LakeError(f"segment {snapshot.id} ({snapshot.name}) no longer fits the lake: {err}") from None
        expressions[snapshot.id] = expr
        leaves.update(needs.leaves)
        references[snapshot.id] = needs.segments
        conditions += [c for c in needs.event_conditions if c not in conditions]
    dataset = config.profile_dataset(config.segmentation_dataset)
    assert dataset is not None
    plan = EvaluationPlan(
        now=datetime.fromtimestamp(record.evaluation_time / 1000, UTC),
        segments=tuple(EvaluatedSegment(i, expressions[i]) for i in dependency_order(references)),
        writeback_path=config.resolve(dataset.path),
        writeback_txn_app_id=f"export-jobs-{config.deployment}-job-{record.id}-segmentation",
        writeback_metadata=json.dumps({"jobId": record.id, "segments": list(expressions)}),
    )
    needs = pql.Needs(tuple(leaves.items()),
                      tuple(dict.fromkeys(r for refs in references.values() for r in refs)), tuple(conditions))
    return plan, needs


def dependency_order(references: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The segments so that each comes after the ones (among them) its inSegment names.

    Definitions are checked for cycles when they are stored, so one is an error here.
    """
    order: list[str] = []
    visiting: set[str] = set()

    def visit(segment: str) -> None:
        if segment in order:
            return
        if segment in visiting:
            raise LakeError(f"segment definitions reference each other in a cycle through {segment}")
        visiting.add(segment)
        for ref in references[segment]:
            if ref in references:
                visit(ref)
        visiting.discard(segment)
        order.append(segment)

    for segment in references:
        visit(segment)
    return order


def build_plan(record: JobRecord, config: Config) -> ExportPlan:
    """The plan for a stored job record."""
    definition = record.definition()
    policy = resolve_policy(definition, config)
    sources = profile_sources(policy, config)
    profile = merged_schema("profile", sources)
    nodes = projection(profile, parse_field_list(definition.fields) if definition.fields else None)
    leaves = merge_leaves(nodes)
    evaluation, needs = evaluation_plan(record, config, policy) if record.evaluates else (None, None)
    if needs is not None:
        known = {leaf.path for leaf in leaves}
        leaves += [Leaf(path, t) for path, t in needs.leaves if path not in known]
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
        leaves=tuple(leaves),
        segments=segments,
        qualified_from=window.start_time if window else None,
        qualified_to=window.end_time if window else None,
        from_ingest=definition.filter.from_ingest_timestamp,
        events=event_plan(definition, config, needs.event_conditions if needs else (),
                          evaluation.now if evaluation else None, policy.identity_graph == "pdg"),
        empty_profiles=definition.filter.empty_profiles and not segments,
        destination_path=config.resolve(destination.path),
        per_segment=dest.segment_per_batch,
        batch_ids=tuple(dest.batch_ids()),
        txn_app_id=f"export-jobs-{config.deployment}-job-{record.id}",
        user_metadata=json.dumps({"jobId": record.id, "batchIds": dest.batch_ids()}),
        evaluation=evaluation,
        referenced_segments=tuple(("ups", s) for s in needs.segments) if needs else (),
        as_of=evaluation.now if evaluation else None,
        stitching=stitch_plan(config) if policy.identity_graph == "pdg" else None,
    )


def stitch_plan(config: Config) -> StitchPlan:
    segmentation = config.segmentation_dataset
    return StitchPlan(
        profile_sources=tuple(ProfileSource(d.id, config.resolve(d.path), 0, optional=d.id == segmentation)
                              for d in config.profile_datasets),
        event_sources=tuple(event_sources(config)),
        max_identities=config.max_identities_per_graph,
        max_iterations=config.max_graph_iterations,
    )
