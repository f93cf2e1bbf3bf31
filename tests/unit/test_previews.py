"""Previews before Spark: the request, the merge policy it resolves to, the sample's threshold, and an
estimator whose 95% interval covers the true count about 95% of the time (simulated samples)."""

from __future__ import annotations

import random

import pytest

from jobs.control.previews import PreviewStore, create_preview, estimate_document, preview_page
from jobs.spec.errors import RequestRejected
from jobs.spec.previews import HASH_BUCKETS, PreviewState, estimate_count, sample_threshold

ORG, SANDBOX = "demo@Org", "prod"


@pytest.fixture
def config(segment_lake):
    return segment_lake


def problem(config, body) -> tuple[str, str]:
    store = PreviewStore(config.preview_table_path)
    with pytest.raises(RequestRejected) as caught:
        create_preview(store, config, body, ORG, SANDBOX)
    assert store.claimable(0) == []  # nothing was stored
    [found] = caught.value.problems
    return found.path, found.message


def test_a_preview_resolves_its_policy_from_merge_strategy_or_graph_type(config):
    store = PreviewStore(config.preview_table_path)
    plain = create_preview(store, config, {"predicateExpression": 'loyalty.tier = "gold"'}, ORG, SANDBOX)
    assert (plain.state, plain.merge_strategy, plain.graph_type) == (PreviewState.NEW, "timestampOrdered-none-mp",
                                                                     "none")
    stitched = create_preview(store, config, {"predicateExpression": "true", "graphType": "pdg"}, ORG, SANDBOX)
    assert (stitched.merge_strategy, stitched.graph_type) == ("timestampOrdered-pdg-mp", "pdg")
    named = create_preview(store, config, {"predicateExpression": "true", "mergeStrategy": "dataSetPrecedence-mp"},
                           ORG, SANDBOX)
    assert named.merge_strategy == "dataSetPrecedence-mp"
    assert store.claimable(0) == [plain.preview_id, stitched.preview_id, named.preview_id]
    assert store.get(plain.preview_id, ORG, SANDBOX) == plain


def test_a_bad_expression_is_rejected_at_its_position(config):
    path, message = problem(config, {"predicateExpression": 'loyalty.tier = "gold" and loyalty.points > 1'})
    assert path == "predicateExpression" and "'loyalty.points' at position 27" in message


def test_a_claimed_preview_is_not_claimed_twice_until_its_lease_runs_out(config):
    store = PreviewStore(config.preview_table_path)
    preview = create_preview(store, config, {"predicateExpression": "true"}, ORG, SANDBOX)
    claimed = store.claim(preview.preview_id, "a", lease_until=2_000, now=1_000)
    assert claimed is not None and claimed.state is PreviewState.RUNNING
    assert store.claim(preview.preview_id, "b", lease_until=3_000, now=1_500) is None
    assert store.claimable(1_500) == [] and store.claimable(2_500) == [preview.preview_id]
    assert store.claim(preview.preview_id, "b", lease_until=9_000, now=2_500) is not None
    assert not store.finish(claimed.updated(state=PreviewState.RESULT_READY), "a")  # "a" lost it


def test_answers_before_and_after_the_sample():
    from jobs.spec.previews import Preview, Sampling

    preview = Preview(preview_id="p", ims_org_id=ORG, sandbox_name=SANDBOX, state=PreviewState.RESULT_READY,
                      predicate_expression="true", graph_type="none", merge_strategy="m", evaluation_time=0,
                      sampling=Sampling(threshold=HASH_BUCKETS // 4, fraction=0.25, sample_key_limit=10,
                                        total_rows=40),
                      estimate=estimate_count(5, 10, 0.25, 40), results=[{"n": i} for i in range(5)],
                      creation_time=0, update_time=0)
    assert preview_page(preview, limit=2, offset=2) == {"previewId": "p", "state": "RESULT_READY",
                                                         "results": [{"n": 2}, {"n": 3}],
                                                         "links": {"next": "/preview/p?limit=2&offset=4"}}
    assert preview_page(preview, limit=2, offset=4)["links"] == {}
    estimate = estimate_document(preview)
    assert estimate["estimatedSize"] == 20 and estimate["profilesReadSoFar"] == 10 and estimate["totalRows"] == 40
    assert estimate["sampling"]["fraction"] == 0.25 and estimate["sampling"]["method"] == "keyHash"


def test_the_threshold_samples_about_the_limit_or_everything():
    assert sample_threshold(100, None) == sample_threshold(100, 100) == HASH_BUCKETS
    assert sample_threshold(100, 400) == HASH_BUCKETS // 4
    assert sample_threshold(1, 10**12) == 1


def test_a_whole_lake_is_exact_and_no_match_still_bounds_the_count():
    whole = estimate_count(7, 50, 1.0)
    assert (whole.estimated_size, whole.standard_error) == (7, 0)
    assert (whole.confidence_interval.low, whole.confidence_interval.high) == (7, 7)
    none = estimate_count(0, 1000, 0.01)
    assert none.estimated_size == 0 and none.confidence_interval.low == 0
    assert 370 <= none.confidence_interval.high <= 390  # 1.96² · 0.99 / 0.01, about Poisson's 369
    with pytest.raises(ValueError, match="not in"):
        estimate_count(1, 1, 0)


@pytest.mark.parametrize(("true_count", "fraction"), [(3, 0.1), (40, 0.05), (500, 0.02), (2_000, 0.3), (50, 0.9)])
def test_the_interval_covers_the_true_count_about_95_percent_of_the_time(true_count, fraction):
    rng = random.Random(f"{true_count}/{fraction}")
    trials, covered, widths = 2_000, 0, []
    for _ in range(trials):
        matched = sum(rng.random() < fraction for _ in range(true_count))
        interval = estimate_count(matched, matched, fraction).confidence_interval
        covered += interval.low <= true_count <= interval.high
        widths.append(interval.high - interval.low)
    assert covered / trials >= 0.93, covered / trials
    assert sorted(widths)[trials // 2] < 4 * (true_count + 10) / fraction ** 0.5  # honest, not uselessly wide
