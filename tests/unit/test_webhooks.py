"""Webhooks (docs/reference/webhooks.md): the config, the events, the signature as a receiver checks it,
the backoff; deliveries to a local receiver: signed, retried after 500s, failed at once on a 400, and a
receiver that hangs never slows a job (no Spark)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobs.control.jobs import JobStore, cancel_job, new_record
from jobs.control.leases import claim
from jobs.control.schedules import ScheduleStore, create_due_jobs, create_schedule
from jobs.control.webhooks import (
    DeliveryStore,
    WebhookDeliverer,
    attempt_row,
    deliver_before_exit,
    deliver_due,
    deliveries_of,
    job_event_recorder,
    record_events,
)
from jobs.shells.cli import main
from jobs.spec.config import Config, load_config
from jobs.spec.errors import EXIT_NOT_FOUND, ConfigError
from jobs.spec.jobs import JobStatus, Metrics, parse_definition
from jobs.spec.webhooks import backoff_seconds, body_of, job_events, signature, verify, worth_retrying
from receiver import SECRET, SECRET_ENV, add_webhook, receiving, webhook_toml

JOB = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.fixture
def receiver():
    with receiving() as endpoint:
        yield endpoint


@pytest.fixture
def hooked(config, receiver, tmp_path) -> Config:
    """The unit tests' config with one webhook of demo@Org/prod to the receiver, every event, fast retries."""
    return load_config(add_webhook(tmp_path / "export.toml", receiver.url))


def new_job(store: JobStore, config: Config, org: str = "demo@Org", sandbox: str = "prod") -> int:
    definition = parse_definition(JOB)
    return store.create(lambda i: new_record(definition, config, i, org, sandbox, "request", 1_000 + i)).id


def deliveries(config: Config) -> list[dict]:
    return DeliveryStore(config.webhook_table_path).list("demo@Org", "prod")


def settle(config: Config, until: float = 5.0) -> list[dict]:
    """Send due deliveries until none is PENDING (or `until` seconds passed); the log."""
    store, deadline = DeliveryStore(config.webhook_table_path), time.monotonic() + until
    while any(d["status"] == "PENDING" for d in deliveries(config)) and time.monotonic() < deadline:
        deliver_due(store, config, "test")
        time.sleep(0.02)
    return deliveries(config)


def receiver_accepts(secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """How a receiver checks a delivery, written out as the docs show it (not with our own verify)."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(now - int(fields["t"])) <= tolerance and hmac.compare_digest(expected, fields["v1"])


# ---------------------------------------------------------------- config


def write(tmp_path: Path, config: Config, extra: str) -> Path:
    conf = tmp_path / "export.toml"
    conf.write_text(conf.read_text() + extra)
    return conf


def test_webhooks_are_read_with_defaults(hooked, receiver):
    [hook] = hooked.webhooks
    assert (hook.name, hook.url, hook.org, hook.sandboxes) == ("crm", receiver.url, "demo@Org", ["prod"])
    assert hook.secret() == SECRET
    assert hooked.webhooks_for("demo@Org", "prod", "job.failed") == [hook]
    assert hooked.webhooks_for("demo@Org", "dev", "job.failed") == []


def test_delivery_settings_have_sane_defaults(config):
    assert config.webhook_table_path == config.resolve("system/webhook_deliveries") and config.webhooks == []
    settings = config.webhook_delivery
    assert (settings.attempts, settings.first_backoff_seconds, settings.timeout_seconds) == (8, 10.0, 5.0)
    assert settings.max_backoff_seconds >= settings.first_backoff_seconds


@pytest.mark.parametrize("options, message", [
    ({"url": "ftp://example.com/x"}, "webhooks[0].url: 'ftp://example.com/x' is not an http:// or https:// URL"),
    ({"org": "nobody"}, "webhooks[0] (crm): org 'nobody' with sandboxes ['prod'] is not a tenant"),
    ({"sandboxes": ("prod", "qa")}, "webhooks[0] (crm): org 'demo@Org' with sandboxes ['qa'] is not a tenant"),
    ({"url": "http://hooks.example.com:port/x"}, "has no valid port"),
    ({"url": "https:///x"}, "webhooks[0].url: 'https:///x' is not an http:// or https:// URL"),
    ({"events": ("job.done",)}, "webhooks[0].events[0]: Input should be 'job.succeeded'"),
    ({"events": ("job.failed", "job.failed")}, "webhooks[0].events: lists an event twice"),
    ({"ratio": 1.5}, "webhooks[0].rejectedRatioAbove: Input should be less than or equal to 1"),
    ({"delivery": {"firstBackoffSeconds": 30, "maxBackoffSeconds": 5}},
     "webhookDelivery: maxBackoffSeconds must be at least firstBackoffSeconds"),
    ({"delivery": {"timeoutSeconds": 0}}, "webhookDelivery.timeoutSeconds: Input should be greater than 0"),
])
def test_a_bad_webhook_is_refused_naming_its_field(config, tmp_path, options, message):
    url = options.pop("url", "https://hooks.example.com/x")
    conf = write(tmp_path, config, webhook_toml(url, **options))
    with pytest.raises(ConfigError) as err:
        load_config(conf)
    assert message in str(err.value)


def test_the_secret_is_never_in_the_file(config, tmp_path):
    conf = write(tmp_path, config, webhook_toml("https://hooks.example.com/x").replace(
        f'secretEnv = "{SECRET_ENV}"', 'secret = "s3cr3t"'))
    with pytest.raises(ConfigError) as err:
        load_config(conf)
    assert "webhooks[0].secret: Extra inputs are not permitted" in str(err.value)
    assert "webhooks[0].secretEnv: Field required" in str(err.value)


def test_config_show_masks_what_may_be_a_credential_in_a_webhooks_url(config, tmp_path, capsys):
    conf = write(tmp_path, config, webhook_toml("https://user:pw@hooks.example.com:8443/services/T0/B1/XYZ?k=v"))
    assert main(["--conf", str(conf), "config", "show"]) == 0
    [shown] = json.loads(capsys.readouterr().out)["settings"]["webhooks"]["value"]
    assert shown["url"] == "https://hooks.example.com:8443/***" and shown["secretEnv"] == SECRET_ENV


def test_a_webhook_may_name_a_tenant_of_the_http_api(config, tmp_path):
    conf = write(tmp_path, config, "\n".join([
        "", "[[tenants]]", 'org = "orgA"', 'sandboxes = ["dev"]', f'tokenSha256 = "{"0" * 64}"', ""])
        + webhook_toml("https://hooks.example.com/x", org="orgA", sandboxes=("dev",)))
    assert load_config(conf).webhooks[0].org == "orgA"


# ---------------------------------------------------------------- events, signature, backoff


def test_the_signature_checks_as_a_receiver_checks_it():
    body = body_of({"id": "e1", "type": "job.succeeded"})
    header = signature(SECRET, body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert receiver_accepts(SECRET, header, body, now=1_700_000_100)
    assert verify(SECRET, header, body, now=1_700_000_100)
    assert not receiver_accepts(SECRET, header, body + b" ", now=1_700_000_100)  # a body changed on the way
    assert not receiver_accepts("another secret", header, body, now=1_700_000_100)
    assert not verify(SECRET, header, body, now=1_700_000_000 + 301)  # a delivery replayed later
    assert not verify(SECRET, "v1=abc", body, now=1_700_000_000)


def test_the_backoff_doubles_up_to_its_maximum():
    assert [backoff_seconds(n, 10, 100) for n in range(1, 7)] == [10, 20, 40, 80, 100, 100]


@pytest.mark.parametrize("status, again", [(None, True), (500, True), (503, True), (408, True), (429, True),
                                           (400, False), (404, False), (410, False), (301, False)])
def test_which_outcomes_are_retried(status, again):
    assert worth_retrying(status) is again


def test_a_finished_job_has_its_statuss_event_and_one_for_rejected_records(hooked):
    record = new_record(parse_definition(JOB), hooked, 7, "demo@Org", "prod", "r", 1_000).updated(
        status=JobStatus.SUCCEEDED, update_time=2_000,
        metrics=Metrics(total_exported_profile_counter=90, rejected_record_counter=10))
    succeeded, rejected = job_events("deployment", record)
    assert succeeded["type"] == "job.succeeded" and rejected["type"] == "job.rejectedRecords"
    assert succeeded["data"]["jobId"] == 7 and succeeded["data"]["kind"] == "BATCH"
    assert succeeded["data"]["counters"] == {"totalExportedProfileCounter": 90, "rejectedRecordCounter": 10}
    assert rejected["data"]["rejectedRatio"] == 0.1
    assert job_events("deployment", record)[0]["id"] == succeeded["id"]  # the same event, the same id
    assert job_events("deployment", record.updated(status=JobStatus.PROCESSING)) == []
    assert [e["type"] for e in job_events("deployment", record.updated(status=JobStatus.FAILED))] == ["job.failed"]


def test_rejected_records_reach_only_the_endpoints_whose_ratio_they_exceed(config, tmp_path):
    hooked = load_config(write(tmp_path, config, webhook_toml("https://hooks.example.com/x", ratio=0.2)))
    record = new_record(parse_definition(JOB), hooked, 7, "demo@Org", "prod", "r", 1_000).updated(
        status=JobStatus.SUCCEEDED, metrics=Metrics(total_exported_profile_counter=90, rejected_record_counter=10))
    [_, rejected] = job_events("d", record)
    assert deliveries_of(hooked, rejected, 1) == []
    record = record.updated(metrics=Metrics(total_exported_profile_counter=70, rejected_record_counter=30))
    assert len(deliveries_of(hooked, job_events("d", record)[1], 1)) == 1


# ---------------------------------------------------------------- deliveries to a local receiver


def test_a_cancelled_job_is_delivered_signed_with_its_idempotency_key(hooked, receiver):
    store = JobStore(hooked.job_table_path, job_event_recorder(hooked))
    job_id = new_job(store, hooked)
    cancel_job(store, job_id, "demo@Org", "prod")
    [pending] = deliveries(hooked)
    assert (pending["eventType"], pending["status"], pending["attempts"]) == ("job.cancelled", "PENDING", 0)

    [delivered] = settle(hooked)
    assert (delivered["status"], delivered["attempts"], delivered["lastStatusCode"]) == ("DELIVERED", 1, 200)
    [request] = receiver.requests
    assert receiver_accepts(SECRET, request.headers["X-Export-Jobs-Signature"], request.body, int(time.time()))
    assert request.headers["Idempotency-Key"] == request.event["id"] == delivered["eventId"]
    assert request.headers["Content-Type"] == "application/json"
    event = request.event
    assert (event["type"], event["orgId"], event["sandboxName"]) == ("job.cancelled", "demo@Org", "prod")
    assert event["data"]["jobId"] == job_id and event["data"]["status"] == "CANCELLED"
    assert set(event) == {"id", "type", "createdAt", "orgId", "sandboxName", "data"}


def test_500s_are_retried_with_backoff_under_one_idempotency_key(hooked, receiver):
    receiver.answers = [500, 500]
    store = JobStore(hooked.job_table_path, job_event_recorder(hooked))
    cancel_job(store, new_job(store, hooked), "demo@Org", "prod")
    log = DeliveryStore(hooked.webhook_table_path)

    assert deliver_due(log, hooked, "test") == 1
    [row] = deliveries(hooked)
    assert (row["status"], row["attempts"], row["lastStatusCode"]) == ("PENDING", 1, 500)
    assert row["lastError"] == "HTTP 500 Internal Server Error"
    assert row["nextAttemptAt"] >= row["updatedAt"] + 40  # firstBackoffSeconds: 0.05
    # Not due before its backoff ends, due from then on (read at those instants: a loaded machine may
    # well reach nextAttemptAt before this line does).
    assert log.due(row["nextAttemptAt"] - 1) == [] and len(log.due(row["nextAttemptAt"])) == 1

    [row] = settle(hooked)
    assert (row["status"], row["attempts"], row["lastStatusCode"], row["lastError"]) == ("DELIVERED", 3, 200, None)
    keys = {r.headers["Idempotency-Key"] for r in receiver.requests}
    assert len(receiver.requests) == 3 and keys == {row["eventId"]}


def test_attempts_run_out(hooked, receiver):
    receiver.answers = [503, 503, 503, 503]
    record_events(hooked, job_events(hooked.deployment, new_record(parse_definition(JOB), hooked, 1, "demo@Org",
                                                                   "prod", "r", 1).updated(status=JobStatus.FAILED)))
    [row] = settle(hooked)
    assert (row["status"], row["attempts"], row["lastStatusCode"]) == ("FAILED", 3, 503)  # attempts = 3


def test_a_400_fails_at_once(hooked, receiver):
    receiver.answers = [400]
    store = JobStore(hooked.job_table_path, job_event_recorder(hooked))
    cancel_job(store, new_job(store, hooked), "demo@Org", "prod")
    deliver_due(DeliveryStore(hooked.webhook_table_path), hooked, "test")
    [row] = deliveries(hooked)
    assert (row["status"], row["attempts"], row["lastStatusCode"]) == ("FAILED", 1, 400)
    assert len(receiver.requests) == 1


def test_a_hanging_receiver_never_slows_a_job_and_is_retried_later(hooked, receiver):
    receiver.hang()
    store = JobStore(hooked.job_table_path, job_event_recorder(hooked))
    job_id = new_job(store, hooked)
    deliverer = WebhookDeliverer(hooked)
    deliverer.start()
    try:
        handle = claim(store, job_id, "runner", 60_000)
        started = time.monotonic()
        handle.finish(JobStatus.SUCCEEDED)  # the state change: a commit and the delivery's row, no sending
        assert time.monotonic() - started < 1.0
        assert store.get(job_id).status is JobStatus.SUCCEEDED
        deadline = time.monotonic() + 5
        while not (rows := deliveries(hooked)) or rows[0]["attempts"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert rows[0]["status"] == "PENDING" and "timed out" in rows[0]["lastError"]
        receiver.release()
        while deliveries(hooked)[0]["status"] == "PENDING":
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        deliverer.stop()
    [row] = deliveries(hooked)
    assert (row["status"], row["attempts"]) == ("DELIVERED", 2)


def test_a_one_shot_process_sends_for_at_most_its_exit_wait(hooked, receiver):
    receiver.hang()
    slow = hooked.model_copy(update={"webhook_delivery": hooked.webhook_delivery.model_copy(
        update={"timeout_seconds": 5.0, "exit_wait_seconds": 0.5})})
    store = JobStore(slow.job_table_path, job_event_recorder(slow))
    cancel_job(store, new_job(store, slow), "demo@Org", "prod")
    started = time.monotonic()
    deliver_before_exit(slow)
    assert time.monotonic() - started < 1.5
    [row] = deliveries(slow)
    assert (row["status"], row["attempts"]) == ("PENDING", 0)  # left for the next deliverer
    assert len(receiver.requests) == 1


def test_one_delivery_is_claimed_by_one_deliverer_at_a_time(hooked, receiver):
    store = JobStore(hooked.job_table_path, job_event_recorder(hooked))
    cancel_job(store, new_job(store, hooked), "demo@Org", "prod")
    log = DeliveryStore(hooked.webhook_table_path)
    [row] = log.due(int(time.time() * 1000) + 1)
    now = int(time.time() * 1000)
    assert log.claim(row, "first", now + 60_000, now)
    assert not log.claim(row, "second", now + 60_000, now)
    assert log.due(now + 1) == []  # held: no deliverer sees it as due
    assert attempt_row(log, hooked, row, "second") is None and receiver.requests == []


def test_an_event_recorded_twice_is_sent_once(hooked, receiver):
    record = new_record(parse_definition(JOB), hooked, 1, "demo@Org", "prod", "r", 1).updated(
        status=JobStatus.CANCELLED)
    record_events(hooked, job_events(hooked.deployment, record))
    record_events(hooked, job_events(hooked.deployment, record))
    rows = settle(hooked)
    assert len({r["eventId"] for r in rows}) == 1 and len(receiver.requests) == 1
    assert [(r["status"], r["attempts"]) for r in rows] == [("DELIVERED", 1)] * len(rows)


def test_a_missing_secret_is_a_failed_attempt_not_an_unsigned_request(hooked, receiver, monkeypatch):
    monkeypatch.delenv(SECRET_ENV)
    store = JobStore(hooked.job_table_path, job_event_recorder(hooked))
    cancel_job(store, new_job(store, hooked), "demo@Org", "prod")
    [row] = settle(hooked)
    assert row["status"] == "FAILED" and SECRET_ENV in row["lastError"] and receiver.requests == []


def test_a_delivery_log_that_cannot_be_written_never_fails_the_job(hooked, tmp_path, caplog):
    (tmp_path / "blocked").write_text("a file where the log's folder would be")
    broken = hooked.model_copy(update={"webhook_table": str(tmp_path / "blocked" / "log")})
    store = JobStore(broken.job_table_path, job_event_recorder(broken))
    job_id = new_job(store, broken)
    assert cancel_job(store, job_id, "demo@Org", "prod").status is JobStatus.CANCELLED
    assert "could not be recorded" in caplog.text


def test_a_skipped_slot_is_an_event(hooked, receiver):
    schedules, store = ScheduleStore(hooked.schedule_table_path), JobStore(hooked.job_table_path)
    schedule = create_schedule(schedules, hooked, {"cron": "* * * * *", "incremental": True, "job": JOB},
                               "demo@Org", "prod")
    soon = (datetime.now(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    create_due_jobs(schedules, store, hooked, soon)
    create_due_jobs(schedules, store, hooked, soon + timedelta(minutes=1))  # the first run is still NEW
    [row] = settle(hooked)
    event = receiver.requests[0].event
    assert (row["eventType"], row["status"]) == ("schedule.slotSkipped", "DELIVERED")
    assert event["data"]["scheduleId"] == schedule.id and event["data"]["skippedSlots"] == 1


# ---------------------------------------------------------------- the command line


def test_webhooks_test_sends_a_sample_and_says_how_it_went(hooked, receiver, tmp_path, capsys):
    conf = str(tmp_path / "export.toml")
    assert main(["--conf", conf, "webhooks", "test", "--name", "crm"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert (result["name"], result["delivered"], result["statusCode"], result["attempts"]) == ("crm", True, 200, 1)
    assert receiver.requests[0].event["type"] == "webhook.test"
    assert receiver_accepts(SECRET, receiver.requests[0].headers["X-Export-Jobs-Signature"],
                            receiver.requests[0].body, int(time.time()))

    receiver.answers = [500, 500, 500]
    assert main(["--conf", conf, "webhooks", "test", "--attempts", "2"]) == 1
    [result] = json.loads(capsys.readouterr().out)
    assert (result["delivered"], result["statusCode"], result["attempts"]) == (False, 500, 2)
    assert deliveries(hooked) == []  # a test is not in the delivery log

    assert main(["--conf", conf, "webhooks", "test", "--name", "nope"]) == EXIT_NOT_FOUND
    capsys.readouterr()


def test_webhooks_deliveries_lists_the_log_newest_first(hooked, receiver, tmp_path, capsys):
    receiver.answers = [400]
    store = JobStore(hooked.job_table_path, job_event_recorder(hooked))
    first, second = new_job(store, hooked), new_job(store, hooked)
    cancel_job(store, first, "demo@Org", "prod")
    settle(hooked)
    cancel_job(store, second, "demo@Org", "prod")
    conf = str(tmp_path / "export.toml")
    assert main(["--conf", conf, "webhooks", "deliveries"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in listed] == ["PENDING", "FAILED"]
    assert main(["--conf", conf, "webhooks", "deliveries", "--status", "FAILED"]) == 0
    assert [r["lastStatusCode"] for r in json.loads(capsys.readouterr().out)] == [400]


def test_run_pending_sends_the_due_deliveries(hooked, receiver, tmp_path, capsys):
    store = JobStore(hooked.job_table_path, job_event_recorder(hooked))
    cancel_job(store, new_job(store, hooked), "demo@Org", "prod")
    assert main(["--conf", str(tmp_path / "export.toml"), "run-pending"]) == 0  # no NEW job: no Spark
    capsys.readouterr()
    [row] = deliveries(hooked)
    assert (row["status"], row["eventType"]) == ("DELIVERED", "job.cancelled")
    assert receiver.requests[0].event["type"] == "job.cancelled"
