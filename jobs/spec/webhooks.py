"""Webhooks (docs/reference/webhooks.md): the events endpoints subscribe to, the JSON body a delivery
sends, its signature, and the backoff between attempts. Pure logic: the delivery log and the sending
are jobs.control.webhooks'."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from jobs.spec.jobs import JobRecord, JobStatus
from jobs.spec.privacy_jobs import PrivacyJob

EventType = Literal["job.succeeded", "job.failed", "job.cancelled", "job.rejectedRecords",
                    "schedule.slotSkipped", "privacy.completed"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
# What `export-jobs webhooks test` sends: no endpoint subscribes to it, every endpoint can receive it.
TEST_EVENT = "webhook.test"
SIGNATURE_HEADER = "X-Export-Jobs-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Event ids are UUIDs derived from what happened, so that one event recorded twice (two processes
# seeing one change) is one delivery: the delivery log keys rows by (event id, endpoint).
_EVENT_NAMESPACE = uuid.UUID("6f1c3a52-5d0e-4f57-9a53-2b7f0c1e9d44")
_JOB_EVENTS: dict[JobStatus, EventType] = {JobStatus.SUCCEEDED: "job.succeeded", JobStatus.FAILED: "job.failed",
                                           JobStatus.CANCELLED: "job.cancelled"}
# A receiver answering one of these may succeed later: the delivery is retried.
RETRIED_STATUSES = frozenset({408, 429})


def event_id(deployment: str, event_type: str, subject: str) -> str:
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{deployment}/{event_type}/{subject}"))


def _timestamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(deployment: str, event_type: str, subject: str, org: str, sandbox: str, created_ms: int,
          data: dict[str, Any]) -> dict[str, Any]:
    """An event as its deliveries send it: {"id", "type", "createdAt", "orgId", "sandboxName", "data"}."""
    return {"id": event_id(deployment, event_type, subject), "type": event_type, "createdAt": _timestamp(created_ms),
            "orgId": org, "sandboxName": sandbox, "data": data}


def rejected_ratio(record: JobRecord) -> float:
    """Rejected fragments over rejected fragments and exported profiles (0 when there were neither)."""
    rejected = record.metrics.rejected_record_counter or 0
    seen = rejected + (record.metrics.total_exported_profile_counter or 0)
    return rejected / seen if seen else 0.0


def job_data(record: JobRecord) -> dict[str, Any]:
    """What a job event says of the job: id, kind, status, errors and its counters."""
    metrics = record.metrics.to_dict()
    counters = {k: v for k, v in metrics.items() if k.endswith("Counter") or k in ("totalProfiles",
                                                                                    "destinationVersion")}
    return {"jobId": record.id, "kind": record.job_type, "status": record.status.value,
            "destinationId": record.export_destination.dataset_id if not record.is_segment_job else None,
            "schedule": record.schedule.to_dict() if record.schedule else None,
            "errors": [e.to_dict() for e in record.errors], "counters": counters,
            "rejectedRatio": round(rejected_ratio(record), 6)}


def job_events(deployment: str, record: JobRecord) -> list[dict[str, Any]]:
    """The events of a job that has just finished: its status's, and job.rejectedRecords when it
    rejected any (each endpoint compares the ratio with its own rejectedRatioAbove)."""
    event_type = _JOB_EVENTS.get(record.status)
    if event_type is None:
        return []
    subject = f"{record.id}@{record.update_time}"
    data = job_data(record)
    made = [event(deployment, event_type, subject, record.ims_org_id, record.sandbox_name, record.update_time, data)]
    if record.status is JobStatus.SUCCEEDED and (record.metrics.rejected_record_counter or 0) > 0:
        made.append(event(deployment, "job.rejectedRecords", subject, record.ims_org_id, record.sandbox_name,
                          record.update_time, data))
    return made


def slot_skipped_event(deployment: str, schedule_id: str, org: str, sandbox: str, slot_ms: int,
                       skipped_slots: int, created_ms: int) -> dict[str, Any]:
    return event(deployment, "schedule.slotSkipped", f"{schedule_id}@{slot_ms}", org, sandbox, created_ms,
                 {"scheduleId": schedule_id, "slot": _timestamp(slot_ms), "skippedSlots": skipped_slots,
                  "reason": "the schedule's previous run was still active"})


def privacy_event(deployment: str, job: PrivacyJob) -> dict[str, Any]:
    return event(deployment, "privacy.completed", job.job_id, job.ims_org_id, job.sandbox_name, job.update_time,
                 {"jobId": job.job_id, "requestId": job.request_id, "status": job.status.value,
                  "regulation": job.regulation, "actions": job.user.action,
                  "downloadURL": job.download_url})


def sample_event(deployment: str, org: str, sandbox: str, created_ms: int) -> dict[str, Any]:
    return event(deployment, TEST_EVENT, f"test@{created_ms}", org, sandbox, created_ms,
                 {"message": "a sample event from export-jobs webhooks test"})


def body_of(payload: dict[str, Any]) -> bytes:
    """The bytes a delivery sends (and signs): compact JSON, keys in a fixed order."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Export-Jobs-Signature header: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">. The
    timestamp is signed too, so that a receiver can refuse an old delivery replayed."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance_seconds: int = 300) -> bool:
    """A receiver's check: the header's signature is the body's, and its timestamp is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if not parts.get("t", "").isdigit() or "v1" not in parts:
        return False
    timestamp = int(parts["t"])
    expected = signature(secret, body, timestamp).split("v1=", 1)[1]
    return abs(now - timestamp) <= tolerance_seconds and hmac.compare_digest(expected, parts["v1"])


def backoff_seconds(attempts: int, first: float, maximum: float) -> float:
    """The wait after the `attempts`-th failed attempt: first, 2 × first, 4 × first, … at most `maximum`."""
    return min(maximum, first * 2 ** max(0, attempts - 1))


def worth_retrying(status_code: int | None) -> bool:
    """Whether an attempt's outcome may change on another try: no answer (a timeout, a refused
    connection), a 5xx, 408 or 429. Other 4xx are the request's fault: sending it again fails again."""
    return status_code is None or status_code >= 500 or status_code in RETRIED_STATUSES
