"""Prometheus metrics (docs/reference/metrics.md): what the control tables hold, read when Prometheus
scrapes, and the counters of this process's runner.

Several processes run jobs (`serve`, `run-pending`, spark-submit drivers), so the numbers of the tables
(jobs by status, run times, rows exported) are read from the tables at scrape time by `TableCollector`,
one query per table, never counted in one process. Lease renewals and lost runners happen in a runner
and are counted where they happen, on the process's default registry (with the client's own process,
platform and garbage-collector metrics).

A table's families come from a `Source`, a function of no arguments that queries its store once: adding
another table's families is one entry in `table_sources` (or in the mapping given to `TableCollector`).
"""

from __future__ import annotations

import json
import logging
import threading
from bisect import bisect_right
from collections import Counter as Tally
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from jobs.control.jobs import SEGMENT_JOB, JobStore
from jobs.control.previews import PreviewStore
from jobs.control.privacy_jobs import PrivacyStore
from jobs.control.schedules import ScheduleStore
from jobs.control.webhooks import DeliveryStore
from jobs.spec import JobStatus, PreviewState, PrivacyStatus, now_ms

log = logging.getLogger(__name__)

# -- this process's runner (per process: each process that runs jobs counts its own)

LEASE_RENEWALS = Counter("export_jobs_lease_renewals", "Writes of a running job's record by this process's runners, "
                         "each of which renews the runner's lease")
LEASES_LOST = Counter("export_jobs_leases_lost", "Running jobs this process's runners lost: another runner took the "
                      "job back after the lease ran out")
LOST_RUNNERS = Counter("export_jobs_lost_runners", "Jobs this process took back from a runner that stopped renewing "
                       "its lease, by the status it left them in", ["status"])
for _status in (JobStatus.NEW, JobStatus.FAILED, JobStatus.CANCELLED):  # at 0 from the start, for rate()
    LOST_RUNNERS.labels(status=_status.value)

# -- the tables (the same numbers from every process that serves /metrics)

# Seconds from a runner's claim to the job's end: a small export takes seconds, a large one hours.
RUN_SECONDS_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0)
EXPORT, SEGMENT, PRIVACY, PREVIEW = "export", "segment", "privacy", "preview"
TENANT_LABELS = ["org", "sandbox"]
JOB_LABELS = ["kind", "status", *TENANT_LABELS]
JOBS_HELP = "Jobs in the tables by kind, status (as the table stores it), org and sandbox"
QUEUE_HELP = "Jobs waiting for a runner: NEW export, segment and preview jobs, privacy jobs no runner holds"

Source = Callable[[], Iterable[Metric]]


def _kind(job_type: str | None) -> str:
    """A job table row's kind; a row written before segment jobs existed is an export job's."""
    return SEGMENT if job_type == SEGMENT_JOB else EXPORT


@dataclass(frozen=True)
class FinishedJob:
    """What the metrics read from a finished job's row and record."""

    kind: str
    status: str
    org: str
    sandbox: str
    run_seconds: float | None  # claim to end; None: it never ran (cancelled while NEW)
    exported: int
    rejected: int


def finished_job(row: Mapping[str, Any]) -> FinishedJob:
    """A finished job of JobStore.metric_rows' records. The record is read with json rather than its model:
    a first scrape reads thousands of them."""
    metrics = json.loads(row["record"]).get("metrics") or {}
    run_ms = (metrics.get("totalTime") or {}).get("totalTimeInMs")
    return FinishedJob(_kind(row["jobType"]), row["status"], row["imsOrgId"], row["sandboxName"],
                       None if run_ms is None else run_ms / 1000, metrics.get("totalExportedProfileCounter") or 0,
                       metrics.get("rejectedRecordCounter") or 0)


def run_time_buckets(seconds: Iterable[float], bounds: Iterable[float] = RUN_SECONDS_BUCKETS
                     ) -> tuple[list[tuple[str, float]], float]:
    """A histogram's cumulative buckets (upper bound as Prometheus writes it, count), +Inf last, and its sum."""
    values = sorted(seconds)
    buckets = [(floatToGoString(bound), float(bisect_right(values, bound))) for bound in bounds]
    return [*buckets, ("+Inf", float(len(values)))], sum(values)


def job_table_families(groups: Iterable[Mapping[str, Any]], finished: Iterable[FinishedJob]) -> list[Metric]:
    """The job table's families: jobs by kind and status and the queue (from JobStore.metric_rows' groups),
    run times, rows exported and records rejected (from the finished jobs)."""
    jobs = job_counts(groups)
    run_seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    exported: Tally[tuple[str, str]] = Tally(dict.fromkeys(((org, sandbox) for _, _, org, sandbox in jobs), 0))
    rejected = Tally(exported)
    for job in finished:
        if job.run_seconds is not None:
            run_seconds[(job.kind, job.status)].append(job.run_seconds)
        exported[(job.org, job.sandbox)] += job.exported
        rejected[(job.org, job.sandbox)] += job.rejected
    families: list[Metric] = [
        _gauge("export_jobs_jobs", JOBS_HELP, JOB_LABELS, jobs),
        _gauge("export_jobs_queue_depth", QUEUE_HELP, ["kind"], {
            (kind,): sum(n for (k, status, _, _), n in jobs.items() if k == kind and status == JobStatus.NEW.value)
            for kind in (EXPORT, SEGMENT)}),
    ]
    histogram = HistogramMetricFamily("export_jobs_run_seconds", "Run time of finished jobs that ran (claim to "
                                      "end, the record's metrics.totalTime), by kind and status",
                                      labels=["kind", "status"])
    for labels, seconds_of_jobs in sorted(run_seconds.items()):
        buckets, total = run_time_buckets(seconds_of_jobs)
        histogram.add_metric(list(labels), buckets, total)
    families.append(histogram)
    for name, text, tally in (
            ("export_jobs_exported_rows", "Rows exported by finished jobs (metrics.totalExportedProfileCounter)",
             exported),
            ("export_jobs_rejected_records", "Records finished jobs rejected (metrics.rejectedRecordCounter)",
             rejected)):
        counter = CounterMetricFamily(name, text, labels=TENANT_LABELS)
        for tenant, value in sorted(tally.items()):
            counter.add_metric(list(tenant), value)
        families.append(counter)
    return families


def job_counts(groups: Iterable[Mapping[str, Any]]) -> Tally[tuple[str, str, str, str]]:
    """Jobs by kind, status, org and sandbox, of JobStore.metric_rows' groups (rows without a jobType and
    BATCH rows are both export jobs)."""
    counts: Tally[tuple[str, str, str, str]] = Tally()
    for g in groups:
        counts[(_kind(g["jobType"]), g["status"], g["imsOrgId"], g["sandboxName"])] += g["jobs"]
    return counts


class JobTableSource:
    """The job table's families (a `Source`). A finished record does not change, so the finished jobs are
    kept between scrapes and a scrape reads only the records of jobs that finished since the one before
    (SKEW_MS earlier, for runners whose clocks lag). Should the jobs kept then not add up to the table's
    finished jobs (a clock further behind, a job table made again), it reads every finished record."""

    SKEW_MS = 600_000

    def __init__(self, store: JobStore):
        self.store = store
        self._finished: dict[int, FinishedJob] = {}
        self._since: int | None = None
        self._lock = threading.Lock()  # two scrapes at once share what they keep

    def __call__(self) -> list[Metric]:
        with self._lock:
            groups, records = self.store.metric_rows(self._since)
            finished = {**self._finished, **{row["id"]: finished_job(row) for row in records}}
            kept = Tally((j.kind, j.status, j.org, j.sandbox) for j in finished.values())
            if kept != Tally({key: n for key, n in job_counts(groups).items() if JobStatus(key[1]).finished}):
                groups, records = self.store.metric_rows()
                finished = {row["id"]: finished_job(row) for row in records}
            self._finished = finished
            newest = max((g["updateTime"] for g in groups), default=None)
            self._since = None if newest is None else newest - self.SKEW_MS
            return job_table_families(groups, finished.values())


def privacy_families(rows: Iterable[Mapping[str, Any]]) -> list[Metric]:
    """The privacy table's families from PrivacyStore.metric_rows (grouped by tenant and status)."""
    rows = list(rows)
    jobs = {(PRIVACY, r["status"], r["imsOrgId"], r["sandboxName"]): r["jobs"] for r in rows}
    waiting = sum(r["waiting"] or 0 for r in rows if r["status"] == PrivacyStatus.PROCESSING.value)
    return [_gauge("export_jobs_jobs", JOBS_HELP, JOB_LABELS, jobs),
            _gauge("export_jobs_queue_depth", QUEUE_HELP, ["kind"], {(PRIVACY,): waiting})]


def preview_families(rows: Iterable[Mapping[str, Any]]) -> list[Metric]:
    """The preview table's families from PreviewStore.metric_rows (grouped by tenant and state)."""
    rows = list(rows)
    jobs = {(PREVIEW, r["status"], r["imsOrgId"], r["sandboxName"]): r["jobs"] for r in rows}
    waiting = sum(r["jobs"] for r in rows if r["status"] == PreviewState.NEW.value)
    return [_gauge("export_jobs_jobs", JOBS_HELP, JOB_LABELS, jobs),
            _gauge("export_jobs_queue_depth", QUEUE_HELP, ["kind"], {(PREVIEW,): waiting})]


def schedule_families(rows: Iterable[Mapping[str, Any]]) -> list[Metric]:
    """The schedule table's family from ScheduleStore.metric_rows (grouped by tenant, type and state)."""
    schedules: Tally[tuple[str, str, str, str]] = Tally()
    for r in rows:
        schedules[(r["type"], r["state"], r["imsOrgId"], r["sandboxName"])] += r["schedules"]
    return [_gauge("export_jobs_schedules", "Schedules by type (export, batch_segmentation), state (active, "
                   "inactive, failed), org and sandbox", ["type", "state", *TENANT_LABELS], schedules)]


def delivery_families(rows: Iterable[Mapping[str, Any]]) -> list[Metric]:
    """The webhook delivery log's families from DeliveryStore.metric_rows (grouped by tenant, endpoint,
    event type and status). Its rows are never deleted, so their attempts only grow: a counter."""
    labels = ["endpoint", "event", "status", *TENANT_LABELS]
    deliveries: Tally[tuple[str, ...]] = Tally()
    attempts: Tally[tuple[str, ...]] = Tally()
    for r in rows:
        key = (r["endpoint"], r["eventType"], r["status"], r["imsOrgId"], r["sandboxName"])
        deliveries[key] += r["deliveries"]
        attempts[key] += r["attempts"] or 0
    sent = CounterMetricFamily("export_jobs_webhook_attempts", "Attempts to send webhook deliveries (the delivery "
                               "log's attempts), by the delivery's endpoint, event type, status, org and sandbox",
                               labels=labels)
    for labelled, value in sorted(attempts.items()):
        sent.add_metric(list(labelled), value)
    return [_gauge("export_jobs_webhook_deliveries", "Webhook deliveries in the delivery log by endpoint, event type, "
                   "status (PENDING, DELIVERED, FAILED), org and sandbox", labels, deliveries), sent]


def _gauge(name: str, text: str, labels: list[str], values: Mapping[Any, float]) -> GaugeMetricFamily:
    """A gauge of `values` by their label values (a tuple, in the order of `labels`)."""
    gauge = GaugeMetricFamily(name, text, labels=labels)
    for key, value in sorted(values.items()):
        gauge.add_metric(list(key), value)
    return gauge


def merged(families: Iterable[Metric]) -> list[Metric]:
    """One family per name: tables that share a family (jobs of every kind) each give part of its samples."""
    by_name: dict[str, Metric] = {}
    for family in families:
        if family.name in by_name:
            by_name[family.name].samples.extend(family.samples)
        else:
            by_name[family.name] = family
    return list(by_name.values())


class TableCollector(Collector):
    """The tables' families, read at every scrape: one query per table. A table that cannot be read leaves
    out its families and says so in export_jobs_table_up (0), rather than failing the whole scrape."""

    def __init__(self, sources: Mapping[str, Source]):
        self.sources = dict(sources)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("export_jobs_table_up", "Whether the last scrape read the table (1) or not (0, the "
                               "server's log says why)", labels=["table"])
        families: list[Metric] = []
        for table, source in self.sources.items():
            try:
                families.extend(source())
                up.add_metric([table], 1)
            except Exception:
                log.exception("metrics: the %s table cannot be read", table)
                up.add_metric([table], 0)
        yield from merged(families)
        yield up


def table_sources(jobs: JobStore, privacy: PrivacyStore, previews: PreviewStore, schedules: ScheduleStore,
                  deliveries: DeliveryStore) -> dict[str, Source]:
    """The deployment's tables, by the name export_jobs_table_up gives them."""
    return {
        "jobs": JobTableSource(jobs),
        "privacy": lambda: privacy_families(privacy.metric_rows(now_ms())),
        "previews": lambda: preview_families(previews.metric_rows()),
        "schedules": lambda: schedule_families(schedules.metric_rows()),
        "webhooks": lambda: delivery_families(deliveries.metric_rows()),
    }


def scrape_registry(sources: Mapping[str, Source]) -> CollectorRegistry:
    """What GET /metrics exposes: this process's default registry (its runner's counters, the process
    collector) and the tables' families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(REGISTRY)
    registry.register(TableCollector(sources))
    return registry
