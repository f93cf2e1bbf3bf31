"""A preview's checks and plan: its merge policy from `mergeStrategy` and `graphType`, its expression
checked as a segment definition's is, and the export plan that evaluates it on a sample
(docs/reference/segments.md#previews-and-estimates)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from jobs.planner.build import stitch_plan
from jobs.planner.lake import Schemas, event_sources, fragment_count, merged_schema, profile_sources
from jobs.planner.plan import (
    PREVIEW_SEGMENT,
    EvaluatedSegment,
    EvaluationPlan,
    EventPlan,
    ExportPlan,
    PreviewPlan,
    SegmentSpec,
)
from jobs.spec import (
    HASH_BUCKETS,
    QUALIFIED,
    Config,
    Leaf,
    MergePolicy,
    Preview,
    PreviewRequest,
    RequestRejected,
    pql,
    projection,
    sample_threshold,
)


def preview_policy(request: PreviewRequest, config: Config) -> MergePolicy:
    """The merge policy `mergeStrategy` names (its latest version), else the default, else under a
    `graphType` the default's differs from, the first declared policy of that graph type."""
    if request.merge_strategy is not None:
        policy = config.latest_policy(request.merge_strategy)
        if policy is None:
            declared = ", ".join(sorted({p.id for p in config.merge_policies}))
            raise RequestRejected.at("mergeStrategy", f"unknown merge policy {request.merge_strategy!r}; "
                                                      f"declared: {declared}")
        if request.graph_type is not None and policy.identity_graph != request.graph_type:
            raise RequestRejected.at("graphType", f"merge policy {policy.id!r} has identityGraph "
                                                  f"{policy.identity_graph!r}, not {request.graph_type!r}")
        return policy
    policy = config.default_policy()
    if request.graph_type is None or policy.identity_graph == request.graph_type:
        return policy
    found = next((p for p in config.merge_policies if p.identity_graph == request.graph_type), None)
    if found is None:
        raise RequestRejected.at("graphType", f"no merge policy of this deployment has identityGraph "
                                              f"{request.graph_type!r}")
    return config.latest_policy(found.id) or found


def checked_expression(text: str, policy: MergePolicy, config: Config, segments: Collection[str]
                       ) -> tuple[pql.Expr, pql.Needs]:
    """The expression parsed and checked as a segment definition's is (its size, the merged schema of
    `policy`, inSegment naming one of `segments`); RequestRejected at predicateExpression with the position."""
    try:
        pql.check_size(text, config.limits.pql_length, config.limits.pql_nesting)
        return Schemas.of(policy, config).checked(text, set(segments))
    except pql.PqlError as err:
        raise RequestRejected.at("predicateExpression", str(err)) from None


def preview_plan(preview: Preview, config: Config, segments: Collection[str],
                 suppressed: tuple[str, ...] = ()) -> PreviewPlan:
    """The plan of a stored preview in its tenant's config; `segments`: the tenant's definition ids
    (inSegment reads their memberships in the lake); `suppressed`: the tenant's suppression list."""
    config = config.for_tenant(preview.ims_org_id, preview.sandbox_name)
    policy = config.latest_policy(preview.merge_strategy) or config.default_policy()
    expr, needs = checked_expression(preview.predicate_expression, policy, config, segments)
    now = datetime.fromtimestamp(preview.evaluation_time / 1000, UTC)
    sources = profile_sources(policy, config)
    schema = merged_schema("profile", sources)
    nodes = projection(schema, [path for path, _ in needs.leaves])
    events = None
    if needs.event_conditions:
        found = event_sources(config)
        events = EventPlan(sources=tuple(found), schema=merged_schema("event", found), projection=None,
                           from_ingest=None, to_ingest=None, conditions=needs.event_conditions, before=now,
                           stitched=policy.identity_graph == "pdg")
    fragments = fragment_count(sources)
    export = ExportPlan(
        job_id=0,
        sources=tuple(sources),
        merge=policy.attribute_merge,
        profile_schema=schema,
        projection=nodes,
        leaves=tuple(Leaf(path, t) for path, t in needs.leaves),
        segments=(SegmentSpec("ups", PREVIEW_SEGMENT, tuple(QUALIFIED), ""),),
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
        user_metadata="",
        evaluation=EvaluationPlan(now=now, segments=(EvaluatedSegment(PREVIEW_SEGMENT, expr),),
                                  writeback_path="", writeback_txn_app_id="", writeback_metadata=""),
        referenced_segments=tuple(("ups", s) for s in needs.segments),
        as_of=now,
        stitching=stitch_plan(config) if policy.identity_graph == "pdg" else None,
        fragments=fragments,
        hashed_example_ids=config.example_ids == "hashed",
        suppressed=suppressed,
        suppression_salt=config.salt,
    )
    return PreviewPlan(export=export, threshold=sample_threshold(config.preview_sample_keys, fragments),
                       buckets=HASH_BUCKETS, profiles=config.preview_profiles)
