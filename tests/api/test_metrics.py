"""GET /metrics (docs/reference/metrics.md): read with the operators' scrape token only, parsed by the
Prometheus client's own parser, and its numbers equal to what the tables hold. No Spark."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from jobs.control import WEBHOOK_TABLE_SCHEMA, DeliveryStore, JobStore, claim
from jobs.shells.http import create_app
from jobs.spec import Config, JobStatus, Metrics, TimeSpan, load_config
from sample_lake import empty_deployment
from tests.api.conftest import TENANTS, auth

SCRAPE_TOKEN = "scrape-token"
SCRAPER = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}
JOB = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Config:
    """A deployment of its own, so that the numbers are those of this module's jobs alone."""
    root = tmp_path_factory.mktemp("metrics-lake")
    empty_deployment(root, TENANTS)
    conf = root / "export.toml"
    digest = hashlib.sha256(SCRAPE_TOKEN.encode()).hexdigest()
    conf.write_text(f'metricsTokenSha256 = "{digest}"\n' + conf.read_text())
    return load_config(conf)


@pytest.fixture(scope="module")
def http(config) -> Iterator[TestClient]:
    with TestClient(create_app(config)) as client:
        yield client


def create(http: TestClient, org: str = "orgA", sandbox: str = "prod") -> int:
    answer = http.post("/export/jobs", json=JOB, headers=auth(org, sandbox))
    assert answer.status_code == 200, answer.text
    return int(answer.json()["id"])


def finish(store: JobStore, job_id: int, status: JobStatus, seconds: int, exported: int = 0,
           rejected: int = 0) -> None:
    """A job as a runner leaves it: ran `seconds`, with its counters (as the runner writes them)."""
    record = store.get(job_id)
    start = record.creation_time
    metrics = Metrics(total_time=TimeSpan(start_time_in_ms=start).finish(start + seconds * 1000),
                      total_exported_profile_counter=exported or None, rejected_record_counter=rejected or None)
    store.replace(record.updated(status=status, metrics=metrics), expected=[JobStatus.NEW])


def scrape(http: TestClient) -> dict[str, list]:
    """The scrape, parsed by the client's parser: family name -> samples."""
    answer = http.get("/metrics", headers=SCRAPER)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {family.name: family.samples for family in text_string_to_metric_families(answer.text)}


def values(samples: list, name: str | None = None) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in samples if name is None or s.name == name}


@pytest.fixture(scope="module")
def jobs_in_every_state(http, config) -> JobStore:
    store = JobStore(config.job_table_path)
    create(http)  # stays NEW
    create(http, "orgB", "prod")  # NEW, another tenant
    finish(store, create(http), JobStatus.SUCCEEDED, 90, exported=120, rejected=3)
    finish(store, create(http), JobStatus.SUCCEEDED, 400, exported=30)
    finish(store, create(http, "orgA", "dev"), JobStatus.SUCCEEDED, 20, exported=7, rejected=1)
    finish(store, create(http), JobStatus.FAILED, 5)
    cancelled = create(http)
    assert http.delete(f"/export/jobs/{cancelled}", headers=auth()).status_code == 200  # never ran
    claim(store, create(http, "orgB", "prod"), "a-runner", 60_000)  # PROCESSING
    users = [{"key": "u", "action": ["delete"], "userIDs": [{"namespace": "email", "value": "u@example.com"}]}]
    privacy = {"companyContexts": [{"namespace": "imsOrgID", "value": "orgA"}], "regulation": "gdpr", "users": users}
    assert http.post("/privacy/jobs", json=privacy, headers=auth("orgA", "dev")).status_code == 200
    schedule = {"cron": "0 * * * *", "incremental": True, "job": JOB}
    assert http.post("/config/schedules", json=schedule, headers=auth("orgB", "prod")).status_code == 200
    return store


def test_jobs_by_kind_status_and_tenant_are_those_of_the_job_table(http, jobs_in_every_state):
    families = scrape(http)
    # The job table read another way: each tenant's records through the store's list.
    table = Counter((r.status.value, org, sandbox) for org, (_, sandboxes) in TENANTS.items() for sandbox in sandboxes
                    for r in jobs_in_every_state.list(org, sandbox, limit=1000))
    exported = {
        (("kind", "export"), ("org", org), ("sandbox", sandbox), ("status", status)): float(n)
        for (status, org, sandbox), n in table.items()}
    assert {k: v for k, v in values(families["export_jobs_jobs"]).items() if ("kind", "export") in k} == exported
    assert exported == {
        (("kind", "export"), ("org", "orgA"), ("sandbox", "prod"), ("status", "NEW")): 1.0,
        (("kind", "export"), ("org", "orgA"), ("sandbox", "prod"), ("status", "SUCCEEDED")): 2.0,
        (("kind", "export"), ("org", "orgA"), ("sandbox", "prod"), ("status", "FAILED")): 1.0,
        (("kind", "export"), ("org", "orgA"), ("sandbox", "prod"), ("status", "CANCELLED")): 1.0,
        (("kind", "export"), ("org", "orgA"), ("sandbox", "dev"), ("status", "SUCCEEDED")): 1.0,
        (("kind", "export"), ("org", "orgB"), ("sandbox", "prod"), ("status", "NEW")): 1.0,
        (("kind", "export"), ("org", "orgB"), ("sandbox", "prod"), ("status", "PROCESSING")): 1.0,
    }
    assert values(families["export_jobs_jobs"])[
        (("kind", "privacy"), ("org", "orgA"), ("sandbox", "dev"), ("status", "processing"))] == 1.0
    assert values(families["export_jobs_queue_depth"]) == {
        (("kind", "export"),): 2.0, (("kind", "segment"),): 0.0, (("kind", "privacy"),): 1.0,
        (("kind", "preview"),): 0.0}
    assert values(families["export_jobs_schedules"]) == {
        (("org", "orgB"), ("sandbox", "prod"), ("state", "active"), ("type", "export")): 1.0}
    assert values(families["export_jobs_table_up"]) == {
        (("table", t),): 1.0 for t in ("jobs", "privacy", "previews", "schedules", "webhooks")}


def test_run_times_and_counters_are_summed_from_the_finished_records(http, jobs_in_every_state):
    families = scrape(http)
    records = [r for org, (_, sandboxes) in TENANTS.items() for sandbox in sandboxes
               for r in jobs_in_every_state.list(org, sandbox, limit=1000) if r.status.finished]
    ran = [r for r in records if r.metrics.total_time and r.metrics.total_time.total_time_in_ms is not None]
    succeeded = ("kind", "export"), ("status", "SUCCEEDED")
    histogram = values(families["export_jobs_run_seconds"], "export_jobs_run_seconds_bucket")
    assert histogram[(*succeeded[:1], ("le", "60.0"), succeeded[1])] == 1.0  # 20 s
    assert histogram[(*succeeded[:1], ("le", "300.0"), succeeded[1])] == 2.0  # and 90 s
    assert histogram[(*succeeded[:1], ("le", "+Inf"), succeeded[1])] == 3.0  # and 400 s
    assert histogram[(("kind", "export"), ("le", "5.0"), ("status", "FAILED"))] == 1.0
    assert values(families["export_jobs_run_seconds"], "export_jobs_run_seconds_count") == {
        succeeded: 3.0, (("kind", "export"), ("status", "FAILED")): 1.0}  # the cancelled job never ran
    sums = values(families["export_jobs_run_seconds"], "export_jobs_run_seconds_sum")
    assert sum(sums.values()) == sum(r.metrics.total_time.total_time_in_ms for r in ran) / 1000 == 515.0

    def per_tenant(counter: str) -> dict:
        return {(("org", r.ims_org_id), ("sandbox", r.sandbox_name)): 0.0 for r in records} | {
            key: float(sum(getattr(r.metrics, counter) or 0 for r in records
                           if (r.ims_org_id, r.sandbox_name) == (key[0][1], key[1][1])))
            for key in {(("org", r.ims_org_id), ("sandbox", r.sandbox_name)) for r in records}}

    exported = values(families["export_jobs_exported_rows"], "export_jobs_exported_rows_total")
    rejected = values(families["export_jobs_rejected_records"], "export_jobs_rejected_records_total")
    assert {k: v for k, v in exported.items() if v} == {k: v for k, v in per_tenant(
        "total_exported_profile_counter").items() if v} == {
        (("org", "orgA"), ("sandbox", "prod")): 150.0, (("org", "orgA"), ("sandbox", "dev")): 7.0}
    assert {k: v for k, v in rejected.items() if v} == {
        (("org", "orgA"), ("sandbox", "prod")): 3.0, (("org", "orgA"), ("sandbox", "dev")): 1.0}


def test_webhook_deliveries_and_their_attempts_are_those_of_the_delivery_log(http, config):
    def delivery(event: str, endpoint: str, status: str, attempts: int, org: str = "orgA") -> dict:
        return {**dict.fromkeys(WEBHOOK_TABLE_SCHEMA.names), "eventId": event, "endpoint": endpoint,
                "imsOrgId": org, "sandboxName": "prod", "eventType": "job.failed", "payload": "{}", "status": status,
                "attempts": attempts, "createdAt": 1, "updatedAt": 1, "nextAttemptAt": 1}

    DeliveryStore(config.webhook_table_path).add([
        delivery("e1", "ops", "DELIVERED", 1), delivery("e2", "ops", "DELIVERED", 3),
        delivery("e3", "ops", "FAILED", 8), delivery("e4", "crm", "PENDING", 0, org="orgB")])
    families = scrape(http)
    ops = (("endpoint", "ops"), ("event", "job.failed"))
    tenant_a, tenant_b = (("org", "orgA"), ("sandbox", "prod")), (("org", "orgB"), ("sandbox", "prod"))
    assert values(families["export_jobs_webhook_deliveries"]) == {
        (*ops, *tenant_a, ("status", "DELIVERED")): 2.0, (*ops, *tenant_a, ("status", "FAILED")): 1.0,
        (("endpoint", "crm"), ("event", "job.failed"), *tenant_b, ("status", "PENDING")): 1.0}
    assert values(families["export_jobs_webhook_attempts"], "export_jobs_webhook_attempts_total") == {
        (*ops, *tenant_a, ("status", "DELIVERED")): 4.0, (*ops, *tenant_a, ("status", "FAILED")): 8.0,
        (("endpoint", "crm"), ("event", "job.failed"), *tenant_b, ("status", "PENDING")): 0.0}


def test_the_process_metrics_come_along(http, jobs_in_every_state):
    families = scrape(http)
    assert {"export_jobs_lease_renewals", "export_jobs_leases_lost", "export_jobs_lost_runners",
            "process_cpu_seconds", "python_info"} <= families.keys()


def test_openmetrics_is_served_when_asked_for(http, jobs_in_every_state):
    answer = http.get("/metrics", headers={**SCRAPER, "Accept": "application/openmetrics-text; version=1.0.0"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n") and answer.text.count("# EOF") == 1


@pytest.mark.parametrize("headers", [{}, auth("orgA", "prod"), {"Authorization": "Bearer not-the-token"}],
                         ids=["no token", "a tenant's token", "a wrong token"])
def test_only_the_scrape_token_reads_metrics(http, headers):
    answer = http.get("/metrics", headers=headers)
    assert answer.status_code == 401 and answer.headers["content-type"] == "application/problem+json"
    assert [e["path"] for e in answer.json()["errors"]] == ["Authorization"]
    assert "export_jobs" not in answer.text


def test_metrics_are_off_without_a_scrape_token_and_say_how_to_turn_them_on(client):
    answer = client.get("/metrics", headers=auth())  # the shared server's config has no metricsTokenSha256
    assert answer.status_code == 404
    assert "set metricsTokenSha256" in answer.json()["detail"]


def test_metrics_are_not_in_the_tenants_openapi_document(http):
    assert "/metrics" not in http.get("/openapi.json").json()["paths"]


def test_a_job_finished_after_a_scrape_is_in_the_next_one(http, jobs_in_every_state):
    """The server keeps finished jobs' numbers between scrapes and reads only the records of newer ones."""
    def exported_rows() -> float:
        return values(scrape(http)["export_jobs_exported_rows"], "export_jobs_exported_rows_total")[
            (("org", "orgB"), ("sandbox", "prod"))]

    before = exported_rows()
    finish(jobs_in_every_state, create(http, "orgB", "prod"), JobStatus.SUCCEEDED, 10, exported=11)
    assert exported_rows() == before + 11
