"""A real export job, run through the product, has its job.succeeded event delivered with its counters, and a
privacy request its privacy.completed event (docs/reference/webhooks.md)."""

from __future__ import annotations

import time

import pytest

from jobs.control import (
    DeliveryStore,
    JobStore,
    PrivacyStore,
    create_job,
    create_privacy_jobs,
    deliver_due,
    job_event_recorder,
    run_job,
    run_privacy_jobs,
)
from jobs.spec import JobStatus, PrivacyStatus, load_config, verify
from receiver import SECRET, SECRET_ENV, add_webhook, receiving

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


def test_a_completed_privacy_request_is_delivered(spark, deployment, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    # An access request only, its table and documents of its own: the shared lake stays as it is.
    deployment.write_text(f'privacyTable = "{tmp_path / "privacy"}"\nprivacyDocuments = "{tmp_path / "documents"}"\n'
                          + deployment.read_text())
    with receiving() as receiver:
        config = load_config(add_webhook(deployment, receiver.url, events=("privacy.completed",)))
        store = PrivacyStore(config.privacy_table_path)
        request = {"companyContexts": [{"namespace": "imsOrgID", "value": "demo@Org"}], "regulation": "gdpr",
                   "users": [{"key": "person-1", "action": ["access"],
                              "userIDs": [{"namespace": "email", "value": "nobody@example.com"}]}]}
        [created] = create_privacy_jobs(store, request, "demo@Org", "prod")["jobs"]
        [done] = run_privacy_jobs(store, config, lambda: spark, "test-runner")
        assert done.status is PrivacyStatus.COMPLETE, done.errors
        deliver_due(DeliveryStore(config.webhook_table_path), config, "test")
    [delivered] = receiver.requests
    event = delivered.event
    assert (event["type"], event["orgId"], event["sandboxName"]) == ("privacy.completed", "demo@Org", "prod")
    assert event["data"]["jobId"] == created["jobId"] and event["data"]["status"] == "complete"
    assert event["data"]["actions"] == ["access"] and event["data"]["downloadURL"] == done.download_url
