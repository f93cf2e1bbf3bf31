"""Previews and estimates on the generated lake: the sample's matches are the expression's, a whole-lake
sample is exact, and a sampled estimate's interval holds the count an evaluating export finds."""

from __future__ import annotations

import pytest

from jobs.control import (
    JobStore,
    PreviewStore,
    SegmentStore,
    create_job,
    create_preview,
    create_segment,
    estimate_document,
    preview_page,
    run_job,
    run_previews,
)
from jobs.spec import PreviewState

from ..reference import latest_values

pytestmark = pytest.mark.spark

ORG, SANDBOX = "demo@Org", "prod"
GOLD = 'loyalty.tier = "gold"'
GOLD_BUYERS = 'loyalty.tier = "gold" and xEvent[eventType = "commerce.purchases"].count() >= 1'


@pytest.fixture
def config(evaluating, tmp_path):
    return evaluating.model_copy(update={"preview_table": str(tmp_path / "previews")})


def previewed(config, spark, expression: str, **changes):
    config = config.model_copy(update=changes)
    store = PreviewStore(config.preview_table_path)
    created = create_preview(store, config, {"predicateExpression": expression}, ORG, SANDBOX)
    assert created.state is PreviewState.NEW
    [done] = run_previews(store, config, lambda: spark)
    assert done.state is PreviewState.RESULT_READY, done.error
    assert store.get(done.preview_id, ORG, SANDBOX) == done
    return done


def gold_keys(config) -> set[tuple[str, str]]:
    tiers = latest_values([config.resolve(d.path) for d in config.profile_datasets
                           if d.id != config.segmentation_dataset], "loyalty", "tier")
    return {k for k, tier in tiers.items() if tier == "gold"}


def key_of(profile: dict) -> tuple[str, str]:
    return next((ns, i["id"]) for ns, items in profile["identityMap"].items() for i in items if i["primary"])


def test_a_whole_lake_sample_is_exact_and_shows_what_the_expression_reads(config, spark):
    preview = previewed(config, spark, GOLD)

    gold = gold_keys(config)
    estimate = estimate_document(preview)
    assert estimate["sampling"]["fraction"] == 1.0
    assert estimate["estimatedSize"] == estimate["matchedInSample"] == len(gold) > 0
    assert estimate["confidenceInterval"] == {"level": 0.95, "low": len(gold), "high": len(gold)}
    assert estimate["standardError"] == 0
    assert estimate["profilesReadSoFar"] >= len(gold)
    first = preview_page(preview, limit=3)
    assert len(first["results"]) == 3 and first["links"]["next"].endswith("limit=3&offset=3")
    assert all(p["loyalty"] == {"tier": "gold"} for p in first["results"])
    shown = [key_of(p) for p in preview.results or []]
    assert shown == sorted(shown) and set(shown) == (gold if len(gold) <= 100 else set(shown))


def test_a_sampled_estimate_holds_the_count_an_evaluating_export_finds(config, spark):
    segment = create_segment(SegmentStore(config.segment_table_path), config,
                             {"name": "gold buyers", "schema": {"name": "_xdm.context.profile"},
                              "expression": {"type": "PQL", "format": "pql/text", "value": GOLD_BUYERS}},
                             ORG, SANDBOX).id
    jobs = JobStore(config.job_table_path)
    body = {"fields": "loyalty.tier", "evaluationInfo": {"segmentation": True},
            "filter": {"segments": [{"segmentId": segment}]},
            "destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
    exported = run_job(jobs, config, create_job(jobs, config, body, ORG, SANDBOX).id, spark)
    exact = exported.metrics.total_exported_profile_counter
    assert exact

    preview = previewed(config, spark, GOLD_BUYERS, preview_sample_keys=150)

    assert preview.sampling is not None and preview.estimate is not None
    assert 0 < preview.sampling.fraction < 1
    assert preview.estimate.profiles_read_so_far < exact / preview.sampling.fraction + 200
    interval = preview.estimate.confidence_interval
    assert interval.low <= exact <= interval.high
    assert interval.low < interval.high
    assert {key_of(p) for p in preview.results or []} <= gold_keys(config)
