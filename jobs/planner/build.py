"""From a job definition to its export plan, with one set of checks for creation and run time.

`resolve` finds what a definition needs in the config and the lake (merge policy,
destination, profile schema and projection, events) and lists every problem with
the JSON path of the field at fault. At creation `check_job` rejects the request
with them (nothing written); at run time `build_plan` turns the stored record into
the plan the engine runs, and the same problems mean the lake or config changed
since the job was created (LakeError). No Spark; schemas are read with delta-rs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from jobs.planner.lake import Schemas, event_sources, fragment_count, merged_schema, profile_sources
from jobs.planner.plan import (
    ConsentRule,
    EvaluatedSegment,
    EvaluationPlan,
    EventPlan,
    EventSource,
    ExportPlan,
    ProfileSource,
    SegmentSpec,
    StitchPlan,
)
from jobs.spec import (
    DATA_USAGE_OMITTED,
    EVENT_SYSTEM_COLUMNS,
    QUALIFIED,
    SYSTEM_COLUMNS,
    UNKNOWN_SEGMENT,
    AppliedConsent,
    Config,
    ConsentPolicy,
    DestinationDataset,
    Forbidden,
    JobDefinition,
    JobRecord,
    JobWarning,
    LakeError,
    Leaf,
    MergePolicy,
    Node,
    Problem,
    RequestRejected,
    SegmentDefinition,
    SegmentSnapshot,
    UnknownPath,
    allowed_paths,
    attribute_schema,
    did_you_mean,
    label_conflicts,
    merge_leaves,
    parse_field_list,
    pql,
    projection,
    segment_id_path,
    type_at,
)


def resolve_policy(definition: JobDefinition, config: Config,
                   definitions: Mapping[str, SegmentDefinition] | None = None) -> MergePolicy:
    """The job's merge policy: the one it names, else its segments' (the seeds: "if left out, the
    segment's"), else the default. `definitions`: the scope's segment definitions."""
    ref = definition.merge_policy
    if ref is None and definitions:
        named = {definitions[s.segment_id].merge_policy_id for s in definition.filter.segments or ()
                 if s.segment_ns == "ups" and s.segment_id in definitions}
        if len(named) > 1:
            raise RequestRejected.at(
                "mergePolicy",
                f"the segments' definitions use different merge policies ({', '.join(sorted(named))}): "
                "name the one to export with",
            )
        found = config.latest_policy(named.pop()) if named else None
        if named and found is None:
            raise RequestRejected.at("mergePolicy", "the segments' merge policy is no longer declared: name one")
        return found or config.default_policy()
    if ref is None:
        return config.default_policy()
    policy = config.policy(ref.id, ref.version)
    if policy is None:
        declared = ", ".join(f"{p.id} v{p.version}" for p in config.merge_policies)
        raise RequestRejected.at("mergePolicy", f"unknown merge policy {ref.id!r} version {ref.version}; "
                                                f"declared: {declared}")
    return policy


def event_plan(definition: JobDefinition, config: Config, conditions: tuple[pql.Expr, ...] = (),
               before: datetime | None = None, stitched: bool = False) -> EventPlan | None:
    """What to read of the event datasets, or None when the job needs no events."""
    event_list = definition.additional_fields.event_list if definition.additional_fields else None
    empty = definition.filter.empty_profiles and not definition.filter.segments
    if not config.event_datasets or (event_list is None and not empty and not conditions):
        return None
    sources = event_sources(config)
    schema = merged_schema("event", sources)
    nodes = None
    window = event_list.filter if event_list and event_list.filter else None
    if event_list is not None:
        destination = config.destination(definition.destination.dataset_id)
        forbidden = config.forbidden(destination, "event") if destination is not None else []
        paths = selected_paths(event_list.fields, schema, forbidden, EVENT_SYSTEM_COLUMNS)
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


def selected_paths(fields: str | None, schema: dict[str, Any], forbidden: list[Forbidden],
                   system: tuple[str, ...] = SYSTEM_COLUMNS) -> list[tuple[str, ...]] | None:
    """The attribute paths a `fields` text selects: as it lists them; when it is left out, every
    attribute (None) or, if the destination may not receive some, every other one."""
    if fields:
        return parse_field_list(fields)
    if not forbidden:
        return None
    return allowed_paths(attribute_schema(schema, system), forbidden)[0]


@dataclass(frozen=True)
class Resolved:
    """What a definition needs of the config and the lake; parts that could not be found are None."""

    policy: MergePolicy
    destination: DestinationDataset | None
    sources: list[ProfileSource]
    profile_schema: dict[str, Any]
    projection: tuple[Node, ...] | None
    events: EventPlan | None  # what the definition itself reads of the events (no segment conditions)
    problems: list[Problem]
    consent: list[AppliedConsent] = field(default_factory=list)  # the destination's policy, then the job's
    warnings: list[JobWarning] = field(default_factory=list)  # attributes left out by data-usage labels


def consent_problems(definition: JobDefinition, destination: DestinationDataset | None,
                     profile: dict[str, Any]) -> tuple[list[AppliedConsent], list[Problem]]:
    """The consent policies a job applies, and what is wrong with them: a field the profile schema
    lacks or that holds no string, or a job's policy that would allow what its destination's does not."""
    attributes = attribute_schema(profile)
    applied, problems = [], []
    named: list[tuple[ConsentPolicy, str, Literal["destination", "job"], str]] = []
    if destination is not None and destination.consent is not None:
        named.append((destination.consent, "destination.datasetId", "destination",
                      f"dataset {destination.id!r} requires consent field"))
    if definition.consent is not None:
        named.append((definition.consent, "consent.field", "job", "consent field"))
    for policy, path, source, what in named:
        found = type_at(attributes, policy.path)
        if found != "string":
            held = "which the profile schema does not have" if found is None else "which holds no string values"
            problems.append(Problem(path=path, message=f"{what} {policy.field}, {held} (consent values are "
                                                       "strings such as y, n, dy)"))
            continue
        applied.append(AppliedConsent.of(policy, source))
    if destination is not None and destination.consent is not None and definition.consent is not None:
        problems += [Problem(path=f"consent.{key}", message=f"{why}: a job may narrow its destination's "
                                                            f"consent policy, never widen it")
                     for key, why in destination.consent.loosened_by(definition.consent)]
    return applied, problems


def usage_problems(definition: JobDefinition, config: Config, destination: DestinationDataset,
                   profile: dict[str, Any], events: EventPlan | None) -> tuple[list[Problem], list[JobWarning]]:
    """Listed fields that the destination may not receive (problems), and, for a job with no
    `fields`, the attributes left out for that reason (a warning per list of fields)."""
    problems: list[Problem] = []
    warnings: list[JobWarning] = []
    event_list = definition.additional_fields.event_list if definition.additional_fields else None
    lists: list[tuple[str, str | None, Literal["profile", "event"], dict[str, Any], tuple[str, ...]]] = [
        ("fields", definition.fields, "profile", profile, SYSTEM_COLUMNS)]
    if event_list is not None and events is not None:
        lists.append(("additionalFields.eventList.fields", event_list.fields, "event", events.schema,
                      EVENT_SYSTEM_COLUMNS))
    for path, fields, kind, schema, system in lists:
        forbidden = config.forbidden(destination, kind)
        if not forbidden:
            continue
        if fields:
            problems += [Problem(path=path, message=f"{'.'.join(asked)!r} may not be exported here: "
                                                    f"{rule.reason(destination.id)}")
                         for asked, rule in label_conflicts(parse_field_list(fields), forbidden)]
            continue
        omitted = allowed_paths(attribute_schema(schema, system), forbidden)[1]
        if omitted:
            warnings.append(JobWarning(code=DATA_USAGE_OMITTED, path=path, msg="left out of every attribute: "
                                       + "; ".join(rule.reason(destination.id) for rule in omitted)))
    return problems, warnings


def resolve(definition: JobDefinition, config: Config,
            definitions: Mapping[str, SegmentDefinition] | None = None) -> Resolved:
    """The definition's merge policy, destination, profile schema and projection, and every problem
    with them (an unreadable lake raises LakeError). `definitions`: the scope's segment definitions,
    for a job that lists segments."""
    problems: list[Problem] = []
    try:
        policy = resolve_policy(definition, config, definitions)
    except RequestRejected as err:
        problems += err.problems
        policy = config.default_policy()
    destination = config.destination(definition.destination.dataset_id)
    if destination is None:
        declared = ", ".join(d.id for d in config.destination_datasets) or "none in this org and sandbox"
        problems.append(Problem(
            path="destination.datasetId",
            message=f"unknown dataset {definition.destination.dataset_id!r}; declared: {declared}"
                    + did_you_mean(definition.destination.dataset_id, [d.id for d in config.destination_datasets]),
        ))
    elif definition.schema_.name != destination.schema_name:
        problems.append(Problem(
            path="schema.name",
            message=f"dataset {destination.id!r} has schema {destination.schema_name!r}, "
            f"not {definition.schema_.name!r}",
        ))
    sources = profile_sources(policy, config)
    if all(s.optional for s in sources):
        problems.append(Problem(path="$", message="this org and sandbox have no profile datasets to export from"))
    profile = merged_schema("profile", sources)
    forbidden = config.forbidden(destination, "profile") if destination is not None else []
    nodes = None
    try:
        nodes = projection(profile, selected_paths(definition.fields, profile, forbidden))
    except UnknownPath as err:
        problems += [Problem(path="fields", message=str(each)) for each in err.each]
    event_list = definition.additional_fields.event_list if definition.additional_fields else None
    if event_list is not None and not config.event_datasets:
        problems.append(Problem(path="additionalFields.eventList",
                                message="the config declares no event datasets to export events from"))
    events = None
    try:
        events = event_plan(definition, config)
    except UnknownPath as err:
        problems += [Problem(path="additionalFields.eventList.fields", message=str(each)) for each in err.each]
    consent, wrong = consent_problems(definition, destination, profile)
    problems += wrong
    warnings: list[JobWarning] = []
    if destination is not None:
        wrong, warnings = usage_problems(definition, config, destination, profile, events)
        problems += wrong
    return Resolved(policy, destination, sources, profile, nodes, events, problems, consent, warnings)


def check_job(definition: JobDefinition, config: Config,
              definitions: Mapping[str, SegmentDefinition] | None = None) -> Resolved:
    """Reject what the config or the lake make impossible, every problem at once; returns what the
    job resolved to. `definitions`: the scope's segment definitions, for a job that lists segments."""
    resolved = resolve(definition, config, definitions)
    problems = size_problems(definition, config) + resolved.problems
    problems += evaluation_problems(definition, config, definitions or {}, resolved.policy)
    if problems:
        raise RequestRejected(problems)
    return resolved


def segment_warnings(definition: JobDefinition, defined: Collection[str],
                     members: Callable[[], Collection[tuple[str, str]]]) -> list[JobWarning]:
    """A warning for each filter segment that no definition of the sandbox (`defined`) and no
    membership in the lake (`members()`: (namespace, segment id) pairs) knows: the job runs, but
    exports no one for it. `members` is called only if some listed segment has no definition."""
    unknown = [(i, s) for i, s in enumerate(definition.filter.segments or ()) if s.segment_id not in defined]
    if not unknown:
        return []
    known = members()
    warnings = []
    for i, segment in unknown:
        ids = {id_ for ns, id_ in known if ns == segment.segment_ns}
        if segment.segment_id in ids:
            continue
        warnings.append(JobWarning(
            code=UNKNOWN_SEGMENT, path=segment_id_path(i),
            msg=f"no segment definition of this org and sandbox and no {segment.segment_ns} membership in its "
                f"profile datasets has the id {segment.segment_id!r}, so no profile can match it"
                + did_you_mean(segment.segment_id, sorted({*defined, *ids}))))
    return warnings


def size_problems(definition: JobDefinition, config: Config) -> list[Problem]:
    """Segments and fields beyond the config's limits."""
    problems = []
    segments, fields = len(definition.filter.segments or ()), len((definition.fields or "").split(","))
    if segments > config.limits.segments_per_job:
        problems.append(Problem(path="filter.segments", message=f"lists {segments} segments; a job takes at most "
                                f"{config.limits.segments_per_job} (limits.segmentsPerJob)"))
    if fields > config.limits.fields_per_job:
        problems.append(Problem(path="fields", message=f"lists {fields} fields; a job takes at most "
                                f"{config.limits.fields_per_job} (limits.fieldsPerJob)"))
    return problems


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
                                message="this org and sandbox have no segmentation dataset (segmentationDataset) "
                                        "to write evaluated memberships to"))
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


def snapshots(definition: JobDefinition, definitions: Mapping[str, SegmentDefinition]) -> list[SegmentSnapshot]:
    """What an evaluating job keeps of its segments' definitions (check_job has checked them)."""
    return [SegmentSnapshot.of(definitions[s.segment_id]) for s in definition.filter.segments or ()]


def evaluation_plan(record: JobRecord, config: Config, policy: MergePolicy, deployment: str
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
        writeback_txn_app_id=f"export-jobs-{deployment}-job-{record.id}-segmentation",
        writeback_metadata=json.dumps({"jobId": record.id, "segments": list(expressions)}),
        write_back=record.replay_of is None,
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


def build_plan(record: JobRecord, config: Config, deployment: str, suppressed: tuple[str, ...] = ()) -> ExportPlan:
    """The plan for a stored job record; LakeError if the config or lake no longer fit it.
    `deployment`: the job table's deployment id (JobStore.deployment), in the Delta transaction ids;
    `suppressed`: the tenant's suppression list (hashes of erased identities)."""
    config = config.for_tenant(record.ims_org_id, record.sandbox_name)
    if record.is_segment_job:
        return segment_job_plan(record, config, deployment, suppressed)
    definition = record.definition()
    resolved = resolve(definition, config)
    if resolved.problems or resolved.destination is None or resolved.projection is None:
        raise LakeError("the config or the lake changed since the job was created: "
                        + "; ".join(f"{p.path}: {p.message}" for p in resolved.problems))
    policy, nodes = resolved.policy, resolved.projection
    evaluation, needs = evaluation_plan(record, config, policy, deployment) if record.evaluates else (None, None)
    consent = tuple(ConsentRule(c, Leaf(c.policy().path, "string")) for c in resolved.consent)
    # What is merged: the projection's leaves, then what evaluation and consent read, each once.
    merged = [*merge_leaves(nodes), *(Leaf(path, t) for path, t in (needs.leaves if needs else ())),
              *(rule.leaf for rule in consent)]
    unique: dict[tuple[str, ...], Leaf] = {}
    for leaf in merged:
        unique.setdefault(leaf.path, leaf)
    leaves = list(unique.values())
    dest = record.export_destination
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
    # Counting a segment's members costs its condition on every exported profile: a combined job
    # counts only the segments nothing knew at its creation, for the record's note on them.
    unknown = record.unknown_segments
    counted = segments if dest.segment_per_batch else tuple(
        s for s in segments if (s.namespace, s.segment_id) in unknown)
    plan = ExportPlan(
        job_id=record.id,
        sources=tuple(resolved.sources),
        merge=policy.attribute_merge,
        profile_schema=resolved.profile_schema,
        projection=nodes,
        leaves=tuple(leaves),
        segments=segments,
        counted_segments=counted,
        qualified_from=window.start_time if window else None,
        qualified_to=window.end_time if window else None,
        from_ingest=definition.filter.from_ingest_timestamp,
        events=run_events(definition, config, resolved.events, needs.event_conditions if needs else (),
                          evaluation.now if evaluation else None, policy.identity_graph == "pdg"),
        empty_profiles=definition.filter.empty_profiles and not segments,
        destination_path=config.resolve(resolved.destination.path),
        per_segment=dest.segment_per_batch,
        batch_ids=tuple(dest.batch_ids()),
        txn_app_id=f"export-jobs-{deployment}-job-{record.id}",
        user_metadata=json.dumps({"jobId": record.id, "batchIds": dest.batch_ids()}),
        evaluation=evaluation,
        referenced_segments=tuple(("ups", s) for s in needs.segments) if needs else (),
        as_of=evaluation.now if evaluation else None,
        stitching=stitch_plan(config) if policy.identity_graph == "pdg" else None,
        fragments=fragment_count(resolved.sources),
        hashed_example_ids=config.example_ids == "hashed",
        consent=consent,
        suppressed=suppressed,
        suppression_salt=config.salt,
        mirror=resolved.destination.mode == "mirror",
        deletion_vectors=resolved.destination.deletion_vectors,
    )
    return pinned(plan, record.inputs.versions) if record.inputs is not None else plan


def segment_job_plan(record: JobRecord, config: Config, deployment: str, suppressed: tuple[str, ...] = ()
                     ) -> ExportPlan:
    """A segment job's plan, in its tenant's `config`: its segments evaluated on every profile and their
    memberships written back; no destination."""
    policy = config.policy(record.merge_policy.id, record.merge_policy.version)
    if policy is None:
        raise LakeError(f"merge policy {record.merge_policy.id!r} version {record.merge_policy.version} is no "
                        "longer declared")
    evaluation, needs = evaluation_plan(record, config, policy, deployment)
    plan = evaluation_only_plan(config, policy, evaluation, needs, record.id, suppressed, shown=False)
    return pinned(plan, record.inputs.versions) if record.inputs is not None else plan


def evaluation_only_plan(config: Config, policy: MergePolicy, evaluation: EvaluationPlan, needs: pql.Needs,
                         job_id: int, suppressed: tuple[str, ...], shown: bool) -> ExportPlan:
    """The plan that merges every profile of the tenant's `config` and evaluates `evaluation`'s segments,
    with no destination (a segment job's, a preview's). `shown`: project the attributes the expressions
    read (a preview shows them)."""
    sources = profile_sources(policy, config)
    schema = merged_schema("profile", sources)
    events = None
    if needs.event_conditions:
        found = event_sources(config)
        events = EventPlan(sources=tuple(found), schema=merged_schema("event", found), projection=None,
                           from_ingest=None, to_ingest=None, conditions=needs.event_conditions,
                           before=evaluation.now, stitched=policy.identity_graph == "pdg")
    return ExportPlan(
        job_id=job_id,
        sources=tuple(sources),
        merge=policy.attribute_merge,
        profile_schema=schema,
        projection=projection(schema, [path for path, _ in needs.leaves]) if shown else (),
        leaves=tuple(Leaf(path, t) for path, t in needs.leaves),
        segments=tuple(SegmentSpec("ups", s.segment_id, tuple(QUALIFIED), "") for s in evaluation.segments),
        counted_segments=(),
        qualified_from=None,
        qualified_to=None,
        from_ingest=None,
        events=events,
        empty_profiles=False,
        destination_path="",
        per_segment=False,
        batch_ids=(),
        txn_app_id="",
        user_metadata=json.dumps({"jobId": job_id}),
        evaluation=evaluation,
        referenced_segments=tuple(("ups", s) for s in needs.segments),
        as_of=evaluation.now,
        stitching=stitch_plan(config) if policy.identity_graph == "pdg" else None,
        fragments=fragment_count(sources),
        hashed_example_ids=config.example_ids == "hashed",
        suppressed=suppressed,
        suppression_salt=config.salt,
    )


def pinned(plan: ExportPlan, versions: Mapping[str, int | None]) -> ExportPlan:
    """The plan reading every source at the Delta version its job's first run fixed; a source that
    had no table then (the segmentation dataset before its first write-back) is left out. The
    versions go in the commits' metadata too: what a commit holds can be read again from them."""
    def profile(sources: tuple[ProfileSource, ...]) -> tuple[ProfileSource, ...]:
        return tuple(replace(s, version=versions[s.dataset_id]) if s.dataset_id in versions else s
                     for s in sources if not (s.dataset_id in versions and versions[s.dataset_id] is None))

    def events(sources: tuple[EventSource, ...]) -> tuple[EventSource, ...]:
        return tuple(replace(s, version=versions.get(s.dataset_id)) for s in sources)

    def metadata(text: str) -> str:
        return json.dumps({**json.loads(text), "inputVersions": dict(versions)})

    stitching, evaluation = plan.stitching, plan.evaluation
    return replace(
        plan, sources=profile(plan.sources), user_metadata=metadata(plan.user_metadata),
        evaluation=(replace(evaluation, writeback_metadata=metadata(evaluation.writeback_metadata))
                    if evaluation is not None else None),
        events=replace(plan.events, sources=events(plan.events.sources)) if plan.events is not None else None,
        stitching=replace(stitching, profile_sources=profile(stitching.profile_sources),
                          event_sources=events(stitching.event_sources)) if stitching is not None else None,
    )


def run_events(definition: JobDefinition, config: Config, resolved: EventPlan | None,
               conditions: tuple[pql.Expr, ...], before: datetime | None, stitched: bool) -> EventPlan | None:
    """The events a run reads: the resolved plan, unless segment conditions need events it does not read."""
    if conditions:
        return event_plan(definition, config, conditions, before, stitched)
    return replace(resolved, before=before, stitched=stitched) if resolved is not None else None


def stitch_plan(config: Config) -> StitchPlan:
    segmentation = config.segmentation_dataset
    return StitchPlan(
        profile_sources=tuple(ProfileSource(d.id, config.resolve(d.path), 0, optional=d.id == segmentation)
                              for d in config.profile_datasets),
        event_sources=tuple(event_sources(config)),
        max_identities=config.max_identities_per_graph,
        max_iterations=config.max_graph_iterations,
    )
