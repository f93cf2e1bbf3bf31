"""Webhooks: the delivery log, recording events, and the deliverer that sends them (docs/reference/webhooks.md).

A job, schedule or privacy job whose state changes only records its events: one PENDING row per
(event, endpoint) in the delivery log, a `DeltaRows` table. Recording is guarded: a failure is logged,
never raised into the job. A deliverer (a thread of `serve` and `run-pending`; a bounded pass at the end
of `run`) sends the due rows: it claims a row with a conditional update first, so that two deliverers
never send one delivery at once, and records the outcome: DELIVERED, PENDING again after a backoff, or
FAILED. Every attempt is signed anew and carries the event id as its idempotency key.
"""

from __future__ import annotations

import builtins
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
from deltalake import write_deltalake

from jobs.control.tables import DeltaRows, all_of, equal, literal, retry_commits, tenant
from jobs.spec import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    Config,
    JobRecord,
    NotFound,
    Webhook,
    backoff_seconds,
    body_of,
    job_events,
    now_ms,
    sample_event,
    signature,
    worth_retrying,
)

log = logging.getLogger(__name__)

DeliveryStatus = Literal["PENDING", "DELIVERED", "FAILED"]
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = ("PENDING", "DELIVERED", "FAILED")
WEBHOOK_TABLE_SCHEMA = pa.schema([
    ("eventId", pa.string()),
    ("endpoint", pa.string()),  # the webhook's name in the config; its url is read when sending
    ("imsOrgId", pa.string()),
    ("sandboxName", pa.string()),
    ("eventType", pa.string()),
    ("payload", pa.string()),  # the event's JSON
    ("status", pa.string()),
    ("attempts", pa.int64()),
    ("lastError", pa.string()),
    ("lastStatusCode", pa.int64()),
    ("createdAt", pa.int64()),
    ("updatedAt", pa.int64()),
    ("nextAttemptAt", pa.int64()),
    # The deliverer sending it now, and until when its claim holds (epoch ms): one killed mid-send
    # leaves a claim that runs out, and the next deliverer sends the delivery again.
    ("claimedBy", pa.string()),
    ("claimedUntil", pa.int64()),
])
# A claim outlives the attempt's timeout by this much: recording the outcome takes a commit.
CLAIM_MARGIN_MS = 30_000
# How long a stopping deliverer waits for its attempt's commits, beyond the attempt itself.
STOP_MARGIN_S = 5.0
# Due deliveries a deliverer sends per pass.
BATCH = 50
USER_AGENT = "export-jobs-webhooks"


class DeliveryStore(DeltaRows):
    NAME = "deliveries"
    SCHEMA = WEBHOOK_TABLE_SCHEMA

    def add(self, rows: builtins.list[dict[str, Any]]) -> None:
        """Record deliveries, in a blind append: it reads nothing, so it never conflicts with a deliverer's
        claims and outcomes (a merge that skipped rows already recorded lost its commit race to a busy
        deliverer again and again). The same event recorded twice, which takes two processes recording one
        change, is two rows with one key: a claim holds, and an outcome settles, both at once."""
        source = pa.Table.from_pylist(rows, schema=WEBHOOK_TABLE_SCHEMA)
        with self._lock:
            retry_commits(lambda: write_deltalake(self.path, source, mode="append"))

    def due(self, now: int, limit: int = BATCH) -> builtins.list[dict[str, Any]]:
        """PENDING deliveries whose next attempt is due and that no deliverer holds, oldest due first."""
        where = all_of(equal("status", "PENDING"), f"nextAttemptAt <= {literal(now)}", _free(now))
        return self._query(f"SELECT * FROM deliveries WHERE {where} ORDER BY nextAttemptAt, eventId "
                           f"LIMIT {int(limit)}")

    def claim(self, row: dict[str, Any], holder: str, until: int, now: int) -> bool:
        """Hold a due delivery for one attempt, if it is still as `row` shows it and no one holds it."""
        predicate = all_of(_key(row), equal("status", "PENDING"), equal("attempts", row["attempts"]), _free(now))
        return self._update({"claimedBy": literal(holder), "claimedUntil": literal(until)}, predicate) > 0

    def settle(self, row: dict[str, Any], holder: str, outcome: Attempt, status: DeliveryStatus,
               next_attempt: int | None) -> bool:
        """Record an attempt's outcome and give the claim up; False if the claim was lost meanwhile."""
        updates = {"status": literal(status), "attempts": literal(row["attempts"] + 1),
                   "lastError": literal(outcome.error), "lastStatusCode": literal(outcome.status_code),
                   "updatedAt": literal(now_ms()), "nextAttemptAt": literal(next_attempt),
                   "claimedBy": "NULL", "claimedUntil": "NULL"}
        return self._update(updates, all_of(_key(row), equal("claimedBy", holder))) > 0

    def metric_rows(self) -> builtins.list[dict[str, Any]]:
        """Deliveries and their attempts by tenant, endpoint, event type and status (GET /metrics)."""
        return self._query("SELECT imsOrgId, sandboxName, endpoint, eventType, status, count(*) AS deliveries, "
                           "sum(attempts) AS attempts FROM deliveries "
                           "GROUP BY imsOrgId, sandboxName, endpoint, eventType, status")

    def list(self, org: str, sandbox: str, status: DeliveryStatus | None = None,
             limit: int = 50) -> builtins.list[dict[str, Any]]:
        """The tenant's deliveries, newest first."""
        where = all_of(tenant(org, sandbox), equal("status", status) if status else None)
        return self._query(f"SELECT eventId, endpoint, eventType, status, attempts, lastError, lastStatusCode, "
                           f"createdAt, updatedAt, nextAttemptAt FROM deliveries WHERE {where} "
                           f"ORDER BY createdAt DESC, eventId DESC LIMIT {int(limit)}")


def _key(row: dict[str, Any]) -> str:
    return all_of(equal("eventId", row["eventId"]), equal("endpoint", row["endpoint"]))


def _free(now: int) -> str:
    return f"(claimedUntil IS NULL OR claimedUntil < {literal(now)})"


# ---------------------------------------------------------------- recording events


def deliveries_of(config: Config, event: dict[str, Any], created: int) -> list[dict[str, Any]]:
    """One PENDING row per endpoint of the event's tenant that subscribes to its type (for
    job.rejectedRecords, whose ratio is above the endpoint's rejectedRatioAbove)."""
    rows = []
    for hook in config.webhooks_for(event["orgId"], event["sandboxName"], event["type"]):
        if event["type"] == "job.rejectedRecords" and event["data"]["rejectedRatio"] <= hook.rejected_ratio_above:
            continue
        rows.append({"eventId": event["id"], "endpoint": hook.name, "imsOrgId": event["orgId"],
                     "sandboxName": event["sandboxName"], "eventType": event["type"],
                     "payload": json.dumps(event), "status": "PENDING", "attempts": 0, "lastError": None,
                     "lastStatusCode": None, "createdAt": created, "updatedAt": created, "nextAttemptAt": created,
                     "claimedBy": None, "claimedUntil": None})
    return rows


def record_events(config: Config, events: list[dict[str, Any]]) -> None:
    """Record the events' deliveries. Never raises: a job, schedule or privacy job must not fail or
    wait because its webhooks could not be recorded (the error is logged)."""
    if not config.webhooks:
        return
    try:
        created = now_ms()
        rows = [row for event in events for row in deliveries_of(config, event, created)]
        if rows:
            DeliveryStore(config.webhook_table_path).add(rows)
    except Exception:
        log.exception("webhooks: the deliveries of events %s could not be recorded",
                      ", ".join(f"{e['type']} {e['id']}" for e in events))


def job_event_recorder(config: Config) -> Callable[[JobRecord], None] | None:
    """What a JobStore calls with each record it stores as finished (JobStore.on_finished)."""
    if not config.webhooks:
        return None
    return lambda record: record_events(config, job_events(config.deployment, record))


# ---------------------------------------------------------------- sending


@dataclass(frozen=True)
class Attempt:
    """An attempt's outcome: the receiver's HTTP status (None: no answer) and what went wrong, if anything."""

    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (3xx), not followed: a POST would go on as a GET, unsigned for its new address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def send(hook: Webhook, event: dict[str, Any], secret: str, timeout: float) -> Attempt:
    """POST the event to the endpoint, signed now; at most `timeout` seconds for each of connecting and
    reading the answer."""
    body = body_of(event)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               SIGNATURE_HEADER: signature(secret, body, int(time.time())), IDEMPOTENCY_HEADER: event["id"],
               "X-Export-Jobs-Event": event["type"]}
    request = urllib.request.Request(hook.url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            return Attempt(answer.status, None)
    except urllib.error.HTTPError as err:
        return Attempt(err.code, f"HTTP {err.code} {err.reason}".strip())
    except urllib.error.URLError as err:
        return Attempt(None, f"no answer: {err.reason}")
    except (OSError, http.client.HTTPException) as err:  # timeouts, resets, an answer that is not HTTP
        return Attempt(None, f"no answer: {err or type(err).__name__}")


def attempt_row(store: DeliveryStore, config: Config, row: dict[str, Any], holder: str) -> DeliveryStatus | None:
    """Claim a due delivery, send it once and record the outcome; None if another deliverer had it."""
    settings = config.webhook_delivery
    now = now_ms()
    if not store.claim(row, holder, now + int(settings.timeout_seconds * 2000) + CLAIM_MARGIN_MS, now):
        return None
    hook = config.webhook(row["endpoint"])
    secret = hook.secret() if hook is not None else None
    if hook is None:
        outcome = Attempt(None, f"endpoint {row['endpoint']!r} is no longer in the config")
    elif secret is None:
        outcome = Attempt(None, f"the signing secret's environment variable {hook.secret_env} is not set")
    else:
        outcome = send(hook, json.loads(row["payload"]), secret, settings.timeout_seconds)
    attempts = row["attempts"] + 1
    status: DeliveryStatus
    next_attempt = None
    if outcome.delivered:
        status = "DELIVERED"
    elif hook is None or not worth_retrying(outcome.status_code) or attempts >= settings.attempts:
        status = "FAILED"
    else:
        status = "PENDING"
        wait = backoff_seconds(attempts, settings.first_backoff_seconds, settings.max_backoff_seconds)
        next_attempt = now_ms() + int(wait * 1000)
    if not store.settle(row, holder, outcome, status, next_attempt):
        log.warning("webhooks: delivery %s to %s: its claim ran out before its outcome was recorded",
                    row["eventId"], row["endpoint"])
    elif status != "DELIVERED":
        log.warning("webhooks: delivery of %s %s to %s, attempt %d: %s (%s)", row["eventType"], row["eventId"],
                    row["endpoint"], attempts, outcome.error, status)
    return status


def deliver_due(store: DeliveryStore, config: Config, holder: str, deadline: float | None = None,
                stop: threading.Event | None = None) -> int:
    """Send the deliveries due now, until time.monotonic() reaches `deadline` or `stop` is set (if given);
    how many were tried."""
    tried = 0
    for row in store.due(now_ms()):
        if (deadline is not None and time.monotonic() >= deadline) or (stop is not None and stop.is_set()):
            break
        if attempt_row(store, config, row, holder) is not None:
            tried += 1
    return tried


class WebhookDeliverer:
    """A background thread that sends due deliveries every webhookDelivery.pollSeconds (behind `serve`
    and `run-pending`)."""

    def __init__(self, config: Config, store: DeliveryStore | None = None):
        self.config = config
        self.store = store or DeliveryStore(config.webhook_table_path)
        self.holder = f"deliverer-{uuid.uuid4().hex[:12]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="webhook-deliverer", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                # Every attempt rewrites its row's file: compact and vacuum as the runners do their tables.
                if deliver_due(self.store, self.config, self.holder, stop=self._stop):
                    self.store.maintain(self.config.table_retention_hours)
            except Exception:  # the table unreadable for now: the next poll tries again
                log.exception("webhook deliverer")
            self._stop.wait(self.config.webhook_delivery.poll_seconds)

    def start(self) -> None:
        if self.config.webhooks:
            self._thread.start()

    def stop(self) -> None:
        """Stop polling, once the attempt under way (if any) is sent and recorded: its connection and its
        answer take at most 2 × timeoutSeconds, its claim and outcome two small commits."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2 * self.config.webhook_delivery.timeout_seconds + STOP_MARGIN_S)


def deliver_before_exit(config: Config) -> None:
    """A one-shot process (`export-jobs run`) sends what is due for at most webhookDelivery.exitWaitSeconds,
    in a thread it does not wait for longer: what is left stays PENDING for the next deliverer."""
    if not config.webhooks or config.webhook_delivery.exit_wait_seconds <= 0:
        return
    store, seconds = DeliveryStore(config.webhook_table_path), config.webhook_delivery.exit_wait_seconds
    holder = f"deliverer-{uuid.uuid4().hex[:12]}"

    def deliver() -> None:
        try:
            deliver_due(store, config, holder, time.monotonic() + seconds)
        except Exception:
            log.exception("webhooks: the deliveries due at exit")

    sender = threading.Thread(target=deliver, name="webhook-exit", daemon=True)
    sender.start()
    sender.join(seconds)


class WebhookNotFound(NotFound):
    pass


def send_samples(config: Config, org: str, sandbox: str, name: str | None = None,
                  attempts: int = 1) -> list[dict[str, Any]]:
    """`export-jobs webhooks test`: a sample event sent now to the named endpoint (default: every endpoint
    of the tenant), up to `attempts` times with the configured backoff; not recorded in the delivery log."""
    if name is not None:
        hook = config.webhook(name)
        if hook is None or hook.org != org or sandbox not in hook.sandboxes:
            raise WebhookNotFound(f"no webhook {name!r} for org {org!r}, sandbox {sandbox!r}")
        hooks = [hook]
    else:
        hooks = [w for w in config.webhooks if w.org == org and sandbox in w.sandboxes]
        if not hooks:
            raise WebhookNotFound(f"org {org!r}, sandbox {sandbox!r} has no webhooks")
    settings = config.webhook_delivery
    results = []
    for hook in hooks:
        event = sample_event(config.deployment, org, sandbox, now_ms())
        secret = hook.secret()
        tried = 0
        outcome = Attempt(None, f"the signing secret's environment variable {hook.secret_env} is not set")
        while secret is not None and tried < attempts:
            if tried:
                time.sleep(backoff_seconds(tried, settings.first_backoff_seconds, settings.max_backoff_seconds))
            outcome = send(hook, event, secret, settings.timeout_seconds)
            tried += 1
            if outcome.delivered or not worth_retrying(outcome.status_code):
                break
        results.append({"name": hook.name, "url": hook.url, "eventId": event["id"], "delivered": outcome.delivered,
                        "statusCode": outcome.status_code, "attempts": tried, "error": outcome.error})
    return results
