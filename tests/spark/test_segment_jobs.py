"""Segment jobs on the generated lake: the runner evaluates and writes back memberships (no export),
counts what AEP's segment jobs report, a retry writes nothing twice, and an export then reads them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from deltalake import DeltaTable

from jobs.control import (
    JobStore,
    SegmentStore,
    create_job,
    create_segment,
    create_segment_job,
    run_job,
    segment_job_document,
)
from jobs.engine import run_segmentation
from jobs.planner import build_plan
from jobs.spec import JobStatus, load_config
from sample_lake import sample_config

from ..reference import event_counts, latest_values, read_rows

pytestmark = pytest.mark.spark

ORG, SANDBOX = "demo@Org", "prod"
GOLD_BUYERS = ('loyalty.tier = "gold" and xEvent[eventType = "commerce.purchases" and '
               "timestamp occurs between date(2024, 1, 1) and date(2024, 2, 15)].count() >= 1")


@pytest.fixture
def config(lake, tmp_path):
    root, _ = lake
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(root, job_table=str(tmp_path / "jobs"), destination=str(tmp_path / "out"),
                                  segmentation=str(tmp_path / "memberships")))
    return load_config(conf)


def expected_gold_buyers(config) -> set[tuple[str, str]]:
    tiers = latest_values([config.resolve(d.path) for d in config.profile_datasets
                           if d.id != config.segmentation_dataset], "loyalty", "tier")
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 16, tzinfo=UTC)
    counts = event_counts([config.resolve(d.path) for d in config.event_datasets],
                          lambda e: e["eventType"] == "commerce.purchases"
                          and start <= e["timestamp"].replace(tzinfo=UTC) < end)
    return {k for k, tier in tiers.items() if tier == "gold" and counts.get(k, 0) >= 1}


def test_a_segment_job_writes_back_what_an_export_then_reads(spark, config):
    segments = SegmentStore(config.segment_table_path)
    body = {"name": "gold buyers", "schema": {"name": "_xdm.context.profile"},
            "expression": {"type": "PQL", "format": "pql/text", "value": GOLD_BUYERS}}
    segment = create_segment(segments, config, body, ORG, SANDBOX).id
    jobs = JobStore(config.job_table_path)
    created = create_segment_job(jobs, config, [{"segmentId": segment}], ORG, SANDBOX)

    ran = run_job(jobs, config, created.id, spark)

    assert ran.status is JobStatus.SUCCEEDED, ran.errors
    expected = expected_gold_buyers(config)
    document = segment_job_document(ran)
    metrics = document["metrics"]
    assert document["status"] == "SUCCEEDED" and metrics["segmentedProfileCounter"] == {segment: len(expected)}
    assert metrics["segmentedProfileByStatusCounter"][segment]["realized"] == len(expected) > 0
    assert metrics["segmentedProfileByNamespaceCounter"][segment]["ECID"] == len(expected)
    assert metrics["totalProfiles"] > len(expected) and metrics["profileSegmentationTime"]["totalTimeInMs"] >= 0
    memberships = config.resolve(config.profile_dataset(config.segmentation_dataset).path)
    written = read_rows(memberships)
    assert len(written) == len(expected) and ran.destination is None

    # A retry (the job's runner lost after its commit) finds the commit and writes nothing twice.
    version = DeltaTable(memberships).version()
    again = run_segmentation(spark, build_plan(ran, config, jobs.deployment(config.deployment)))
    assert not again.committed_now and again.evaluated.segmented == {segment: len(expected)}
    assert DeltaTable(memberships).version() == version

    export = {"fields": "loyalty.tier", "filter": {"segments": [{"segmentId": segment}]},
              "destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
    exported = run_job(jobs, config, create_job(jobs, config, export, ORG, SANDBOX).id, spark)
    assert exported.status is JobStatus.SUCCEEDED and exported.metrics.total_exported_profile_counter == len(expected)
