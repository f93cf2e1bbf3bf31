"""A real export job, run through the product, has its job.succeeded event delivered with its counters
(docs/reference/webhooks.md)."""

from __future__ import annotations

import time

import pytest

from jobs.control import DeliveryStore, JobStore, create_job, deliver_due, job_event_recorder, run_job
from jobs.spec import JobStatus, load_config, verify

from ..receiver import SECRET, SECRET_ENV, add_webhook, receiving

pytestmark = pytest.mark.spark

JOB = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}


def test_a_job_run_delivers_its_succeeded_event_with_its_counters(spark, deployment, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with receiving() as receiver:
        config = load_config(add_webhook(deployment, receiver.url, ratio=0.0))
        store = JobStore(config.job_table_path, job_event_recorder(config))
        done = run_job(store, config, create_job(store, config, JOB, "demo@Org", "prod").id, spark)
        assert done.status is JobStatus.SUCCEEDED, done.errors

        deliver_due(DeliveryStore(config.webhook_table_path), config, "test")
    events = {r.event["type"]: r for r in receiver.requests}
    succeeded = events["job.succeeded"]
    assert verify(SECRET, succeeded.headers["X-Export-Jobs-Signature"], succeeded.body, int(time.time()))
    data = succeeded.event["data"]
    assert (data["jobId"], data["status"], data["kind"], data["destinationId"]) == (done.id, "SUCCEEDED", "BATCH",
                                                                                    "audience")
    metrics = done.metrics
    assert metrics.total_exported_profile_counter
    assert data["counters"]["totalExportedProfileCounter"] == metrics.total_exported_profile_counter
    assert data["counters"]["exportedProfileByNamespaceCounter"] == metrics.exported_profile_by_namespace_counter
    # The shared lake has bad fragments: above rejectedRatioAbove = 0, they are an event of their own.
    assert metrics.rejected_record_counter
    assert events["job.rejectedRecords"].event["data"]["counters"]["rejectedRecordCounter"] == \
        metrics.rejected_record_counter
    log = DeliveryStore(config.webhook_table_path).list("demo@Org", "prod")
    assert sorted((d["eventType"], d["status"]) for d in log) == [("job.rejectedRecords", "DELIVERED"),
                                                                  ("job.succeeded", "DELIVERED")]
