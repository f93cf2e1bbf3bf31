"""Segment jobs on the generated lake: the runner evaluates and writes back memberships (no export),
counts what AEP's segment jobs report, a retry writes nothing twice, and an export then reads them."""

from __future__ import annotations

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
from jobs.spec import JobStatus

from ..reference import GOLD_BUYERS, gold_buyers, read_rows

pytestmark = pytest.mark.spark

ORG, SANDBOX = "demo@Org", "prod"


@pytest.fixture
def config(evaluating):
    return evaluating


def test_a_segment_job_writes_back_what_an_export_then_reads(spark, config):
    segments = SegmentStore(config.segment_table_path)
    body = {"name": "gold buyers", "schema": {"name": "_xdm.context.profile"},
            "expression": {"type": "PQL", "format": "pql/text", "value": GOLD_BUYERS}}
    segment = create_segment(segments, config, body, ORG, SANDBOX).id
    jobs = JobStore(config.job_table_path)
    created = create_segment_job(jobs, config, [{"segmentId": segment}], ORG, SANDBOX)

    ran = run_job(jobs, config, created.id, spark)

    assert ran.status is JobStatus.SUCCEEDED, ran.errors
    expected = gold_buyers(config)
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
