"""A preview's checks and plan: its merge policy from `mergeStrategy` and `graphType`, its expression
checked as a segment definition's is, and the export plan that evaluates it on a sample
(docs/reference/segments.md#previews-and-estimates)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from jobs.planner.build import evaluation_only_plan
from jobs.planner.lake import Schemas
from jobs.planner.plan import PREVIEW_SEGMENT, EvaluatedSegment, EvaluationPlan, PreviewPlan
from jobs.spec import (
    HASH_BUCKETS,
    Config,
    MergePolicy,
    Preview,
    PreviewRequest,
    RequestRejected,
    pql,
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
    evaluation = EvaluationPlan(now=datetime.fromtimestamp(preview.evaluation_time / 1000, UTC),
                                segments=(EvaluatedSegment(PREVIEW_SEGMENT, expr),),
                                writeback_path="", writeback_txn_app_id="", writeback_metadata="")
    export = evaluation_only_plan(config, policy, evaluation, needs, 0, suppressed, shown=True)
    return PreviewPlan(export=export, threshold=sample_threshold(config.preview_sample_keys, export.fragments),
                       buckets=HASH_BUCKETS, profiles=config.preview_profiles)
