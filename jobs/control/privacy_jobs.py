"""Privacy jobs: the `privacyTable`, the suppression list, and running access and delete requests
(docs/reference/privacy.md#privacy-requests).

A request becomes one job per user, stored as `processing`. A runner (`run-pending`, `serve`)
claims one with a lease, resolves its identities, and then, each step recorded before the next:
- access: one JSON document with every fragment, event, membership and destination row of the person;
- delete: the identities' salted hashes join the suppression list (every export from then on leaves
  their records out), exports that were already running finish, and a Delta DELETE removes the
  person's rows from every profile, event, segmentation and destination dataset of the tenant.
A retry after a crash repeats only what has no receipt yet, and a DELETE that did commit is found in
the dataset's history (its commit names the job), so nothing is deleted or counted twice.
Later, the data files the deletes removed are vacuumed (`privacyRetentionHours`).
"""

from __future__ import annotations

import builtins
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from deltalake import write_deltalake

from jobs.control.jobs import JobStore
from jobs.control.pages import CursorFormat, cursor_page
from jobs.control.tables import DeltaRows, all_of, before, equal, literal, retry_commits, tenant
from jobs.spec import (
    Config,
    Dataset,
    JobStatus,
    NotFound,
    PrivacyJob,
    PrivacyRequest,
    PrivacyStatus,
    Receipt,
    RequestRejected,
    identity_hash,
    now_ms,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

PRIVACY_CURSOR = CursorFormat(r"[0-9a-f-]{1,64}", str)
PRIVACY_TABLE_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("imsOrgId", pa.string()),
    ("sandboxName", pa.string()),
    ("status", pa.string()),
    ("creationTime", pa.int64()),
    ("updateTime", pa.int64()),
    ("runner", pa.string()),
    ("leaseUntil", pa.int64()),
    ("vacuumAfter", pa.int64()),  # set while an erasure's data files wait to be vacuumed
    ("record", pa.string()),
])
SUPPRESSION_SCHEMA = pa.schema([
    ("imsOrgId", pa.string()),
    ("sandboxName", pa.string()),
    ("namespace", pa.string()),
    ("hash", pa.string()),
    ("jobId", pa.string()),
    ("time", pa.int64()),
])
# A privacy job's lease, in leaseSeconds: one dataset's DELETE may take minutes, and a second
# runner that takes over a job whose runner was slow, not lost, repeats nothing anyway.
LEASE_FACTOR = 10
# How long a delete waits for the exports that were running when its suppression was written.
EXPORT_WAIT_S = 600.0


class PrivacyJobNotFound(NotFound):
    pass


class PrivacyStore(DeltaRows):
    NAME = "privacy"
    SCHEMA = PRIVACY_TABLE_SCHEMA

    def add(self, jobs: builtins.list[PrivacyJob]) -> None:
        rows = pa.Table.from_pylist([_row(j) for j in jobs], schema=PRIVACY_TABLE_SCHEMA)
        with self._lock:
            retry_commits(lambda: write_deltalake(self.path, rows, mode="append"))

    def get(self, job_id: str, org: str | None = None, sandbox: str | None = None) -> PrivacyJob:
        rows = self._query(f"SELECT record FROM privacy WHERE {all_of(equal('id', job_id), tenant(org, sandbox))}")
        if not rows:
            raise PrivacyJobNotFound(f"no privacy job {job_id}")
        return PrivacyJob.model_validate_json(rows[0]["record"])

    def page(self, org: str, sandbox: str, limit: int, after: tuple[int, str] | None = None,
             status: PrivacyStatus | None = None) -> builtins.list[PrivacyJob]:
        where = all_of(tenant(org, sandbox), before(*after) if after else None,
                       equal("status", status.value) if status else None)
        rows = self._query(f"SELECT record FROM privacy WHERE {where} "
                           f"ORDER BY creationTime DESC, id DESC LIMIT {int(limit)}")
        return [PrivacyJob.model_validate_json(r["record"]) for r in rows]

    def claimable(self, now: int, vacuum: bool = False) -> builtins.list[str]:
        """Jobs still processing (`vacuum`: complete, with files to vacuum by now) that no runner holds,
        or whose runner's lease ran out, oldest first."""
        free = f"(runner IS NULL OR leaseUntil < {literal(now)})"
        which = f"vacuumAfter <= {literal(now)}" if vacuum else equal("status", "processing")
        rows = self._query(f"SELECT id FROM privacy WHERE {which} AND {free} ORDER BY creationTime, id")
        return [r["id"] for r in rows]

    def claim(self, job_id: str, runner: str, lease_until: int, now: int,
              status: PrivacyStatus = PrivacyStatus.PROCESSING) -> PrivacyJob | None:
        """The job, now held by `runner`; None if another runner holds it or its status is not `status`."""
        free = f"(runner IS NULL OR leaseUntil < {literal(now)})"
        predicate = all_of(equal("id", job_id), equal("status", status.value), free)
        if self._update({"runner": literal(runner), "leaseUntil": literal(lease_until)}, predicate) != 1:
            return None
        return self.get(job_id)

    def save(self, job: PrivacyJob, runner: str, lease_until: int | None) -> PrivacyJob:
        """Write the runner's job (its lease renewed, or given up with None); LostPrivacyJob if
        another runner took it over meanwhile."""
        row = _row(job)
        updates = {c: literal(row[c]) for c in ("status", "updateTime", "vacuumAfter", "record")}
        updates["leaseUntil"] = literal(lease_until)
        if lease_until is None:
            updates["runner"] = "NULL"
        if self._update(updates, all_of(equal("id", job.job_id), equal("runner", runner))) != 1:
            raise LostPrivacyJob(f"privacy job {job.job_id} was taken over by another runner")
        return job


class LostPrivacyJob(RuntimeError):
    pass


def _row(job: PrivacyJob) -> dict[str, Any]:
    return {"id": job.job_id, "imsOrgId": job.ims_org_id, "sandboxName": job.sandbox_name,
            "status": job.status.value, "creationTime": job.creation_time, "updateTime": job.update_time,
            "runner": None, "leaseUntil": None, "vacuumAfter": job.vacuum_after if job.vacuumed is False else None,
            "record": job.to_json()}


class SuppressionList(DeltaRows):
    """Salted SHA-256 hashes of erased identities, per tenant; every export leaves their records out."""

    NAME = "suppressed"
    SCHEMA = SUPPRESSION_SCHEMA

    def add(self, org: str, sandbox: str, job_id: str, hashes: builtins.list[tuple[str, str]]) -> None:
        """(namespace, hash) pairs, each once per tenant (a retry adds nothing)."""
        added = now_ms()
        rows = pa.Table.from_pylist([{"imsOrgId": org, "sandboxName": sandbox, "namespace": ns.lower(), "hash": h,
                                      "jobId": job_id, "time": added} for ns, h in hashes], schema=SUPPRESSION_SCHEMA)

        def attempt() -> None:
            table = self._table()
            if table is None:
                write_deltalake(self.path, rows, mode="append")
                return
            (table.merge(rows, predicate="t.imsOrgId = s.imsOrgId AND t.sandboxName = s.sandboxName AND "
                                         "t.hash = s.hash", source_alias="s", target_alias="t")
             .when_not_matched_insert_all().execute())

        with self._lock:
            retry_commits(attempt)

    def hashes(self, org: str, sandbox: str) -> builtins.list[str]:
        rows = self._query(f"SELECT DISTINCT hash FROM suppressed WHERE {tenant(org, sandbox)}")
        return sorted(r["hash"] for r in rows)


# ---------------------------------------------------------------- requests


def create_privacy_jobs(store: PrivacyStore, body: str | bytes | dict[str, Any], org: str, sandbox: str,
                        request_id: str | None = None) -> dict[str, Any]:
    """One processing job per user of the request; AEP's answer: `jobs[]`, `requestStatus`, `totalRecords`.
    The request's `companyContexts` must name the caller's org, and only it."""
    request = PrivacyRequest.parse(body)
    if request.org() != org:
        named = sorted({c.value for c in request.company_contexts})
        raise RequestRejected.at("companyContexts", f"names {', '.join(named)}: a request acts for the caller's org "
                                                     f"{org!r} only, and names it alone")
    created = now_ms()
    request_id = request_id or str(uuid.uuid4())
    jobs = [PrivacyJob(job_id=str(uuid.uuid4()), ims_org_id=org, sandbox_name=sandbox, request_id=request_id,
                       status=PrivacyStatus.PROCESSING, regulation=request.regulation, expand_ids=request.expand_ids,
                       user=user, creation_time=created, update_time=created)
            for user in request.users]
    store.add(jobs)
    return {"jobs": [{"jobId": j.job_id, "customer": {"user": {"key": j.user.key, "action": j.user.action}}}
                     for j in jobs],
            "requestStatus": 1, "totalRecords": len(jobs)}


def list_privacy_jobs(store: PrivacyStore, org: str, sandbox: str, limit: int = 50, offset: str | None = None,
                      status: PrivacyStatus | None = None) -> dict[str, Any]:
    after = PRIVACY_CURSOR.decode(offset) if offset else None
    return cursor_page("jobs", store.page(org, sandbox, limit + 1, after, status), limit, offset, PRIVACY_CURSOR,
                       "/privacy/jobs")


# ---------------------------------------------------------------- runs


SparkFactory = Callable[[], "SparkSession"]


def run_privacy_jobs(store: PrivacyStore, config: Config, spark: SparkFactory, runner: str,
                     jobs: JobStore | None = None) -> builtins.list[PrivacyJob]:
    """Run every privacy job no runner holds, oldest first; then vacuum what erasures left to vacuum."""
    done = []
    lease_ms = int(config.lease_seconds * 1000 * LEASE_FACTOR)
    for job_id in store.claimable(now_ms()):
        job = store.claim(job_id, runner, now_ms() + lease_ms, now_ms())
        if job is None:
            continue  # another runner claimed it first
        try:
            done.append(PrivacyRun(store, config, spark, runner, lease_ms, jobs).run(job))
        except LostPrivacyJob as lost:  # the other runner repeats only what has no receipt
            log.warning("%s", lost)
    vacuum_due(store, config, runner, lease_ms)
    return done


class PrivacyRun:
    """One privacy job run by a runner that holds it: each step saved before the next."""

    def __init__(self, store: PrivacyStore, config: Config, spark: SparkFactory, runner: str, lease_ms: int,
                 jobs: JobStore | None):
        self.store, self.spark, self.runner, self.lease_ms = store, spark, runner, lease_ms
        self.base = config
        self.jobs = jobs or JobStore(config.job_table_path)

    def save(self, job: PrivacyJob, **changes: Any) -> PrivacyJob:
        if changes.get("stage"):
            log.info("privacy job %s: %s", job.job_id, changes["stage"])
        finished = changes.get("status", job.status) is not PrivacyStatus.PROCESSING
        job = job.updated(update_time=now_ms(), **changes)
        return self.store.save(job, self.runner, None if finished else now_ms() + self.lease_ms)

    def run(self, job: PrivacyJob) -> PrivacyJob:
        from jobs.engine import privacy as engine

        job = self.save(job, attempts=job.attempts + 1, stage="resolving identities")
        config = self.base.for_tenant(job.ims_org_id, job.sandbox_name)
        try:
            session = self.spark()
            if job.identities is None:
                # The component holds the profile keys of its fragments already: no second scan for them.
                identities = engine.expanded_identities(
                    session, readable(config, "profile") + readable(config, "event"), job.user.user_ids,
                    config.max_identities_per_graph, config.max_graph_iterations) if job.expand_ids else \
                    engine.with_profile_keys(session, readable(config, "profile"), job.user.user_ids)
                job = self.save(job, identities=identities)
            if "access" in job.user.action and job.access_document is None:
                job = self.save(job, stage="writing the access document")
                job = self.access(session, job, config)
            if job.deletes:
                job = self.erase(session, job, config)
            return self.save(job, status=PrivacyStatus.COMPLETE, stage=None,
                             vacuum_after=(now_ms() + config.privacy_retention_hours * 3_600_000
                                           if job.deletes else None),
                             vacuumed=False if job.deletes else None)
        except LostPrivacyJob:
            raise
        except Exception as err:  # the job must say what happened, whatever it was
            from jobs.control.failures import job_error

            log.error("privacy job %s failed: %s", job.job_id, err, exc_info=err)
            return self.save(job, status=PrivacyStatus.ERROR, stage=None,
                             errors=[*job.errors, job_error(err, config.resolve(""))])

    def access(self, session: SparkSession, job: PrivacyJob, config: Config) -> PrivacyJob:
        from jobs.engine import privacy as engine

        identities = job.identities or []
        document: dict[str, Any] = {"jobId": job.job_id, "key": job.user.key, "regulation": job.regulation,
                                    "identities": [i.model_dump(by_alias=True) for i in identities]}
        for section, kind in (("profileFragments", "profile"), ("events", "event"), ("destinations", "destination")):
            document[section] = {dataset_id: engine.person_rows(session, path, identities)
                                 for dataset_id, path in datasets(config, kind)}
        folder = Path(config.privacy_documents_path)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{job.job_id}.json"
        partial = folder / f".{job.job_id}.json.partial"
        partial.write_text(json.dumps(document, indent=2, sort_keys=True, default=str))
        partial.replace(target)  # readers see the whole document or none
        rows = sum(len(rows) for section in ("profileFragments", "events", "destinations")
                   for rows in document[section].values())
        receipt = Receipt(dataset_id="access", kind="access", rows_affected=rows, time=now_ms(), path=str(target))
        return self.save(job, access_document=str(target), receipts=[*job.receipts, receipt])

    def erase(self, session: SparkSession, job: PrivacyJob, config: Config) -> PrivacyJob:
        from jobs.engine import privacy as engine

        identities = job.identities or []
        if job.receipt("suppression", "suppression") is None:
            job = self.save(job, stage="adding the identities to the suppression list")
            hashes = [(i.namespace, identity_hash(config.salt, i.namespace, i.value)) for i in identities]
            SuppressionList(config.suppression_table_path).add(job.ims_org_id, job.sandbox_name, job.job_id, hashes)
            job = self.save(job, receipts=[*job.receipts, Receipt(dataset_id="suppression", kind="suppression",
                                                                  rows_affected=len(hashes), time=now_ms())])
        suppressed = job.receipt("suppression", "suppression")
        assert suppressed is not None
        job = self.save(job, stage="waiting for the exports that started before the erasure")
        self.wait_for_exports(job, suppressed.time)
        for kind in ("profile", "event", "destination"):
            for dataset_id, path in datasets(config, kind):
                if job.receipt(dataset_id, kind) is not None:
                    continue
                job = self.save(job, stage=f"deleting from {dataset_id}")
                rows, version = engine.erase(session, path, identities, job.job_id)
                job = self.save(job, receipts=[*job.receipts, Receipt(dataset_id=dataset_id, kind=kind,
                                                                      rows_affected=rows, version=version,
                                                                      time=now_ms())])
        return job

    def wait_for_exports(self, job: PrivacyJob, since: int) -> None:
        """Until every export job of the tenant claimed before `since` has finished: one that started
        later read the suppression list, and one that started earlier then has its commit before
        this job's DELETE of the destinations, which removes the person from it."""
        deadline = time.monotonic() + EXPORT_WAIT_S
        while True:
            running = [r for r in self.jobs.unfinished(job.ims_org_id, job.sandbox_name)
                       if r.status is not JobStatus.NEW and r.metrics.total_time is not None
                       and r.metrics.total_time.start_time_in_ms < since]
            if not running:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"export jobs {', '.join(str(r.id) for r in running)} still run after "
                                   f"{EXPORT_WAIT_S:.0f} s; the erasure is retried later")
            self.save(job)  # renew the lease
            time.sleep(1.0)


def datasets(config: Config, kind: str) -> builtins.list[tuple[str, str]]:
    """(id, path) of the tenant's datasets of a kind (profile, with the segmentation dataset; event;
    destination) that have a Delta table."""
    from deltalake import DeltaTable

    declared: dict[str, Sequence[Dataset]] = {"profile": config.profile_datasets, "event": config.event_datasets,
                                              "destination": config.destination_datasets}
    found = [(d.id, config.resolve(d.path)) for d in declared[kind]]
    return [(dataset_id, path) for dataset_id, path in found if DeltaTable.is_deltatable(path)]


def readable(config: Config, kind: str) -> builtins.list[str]:
    return [path for _, path in datasets(config, kind)]


def vacuum_due(store: PrivacyStore, config: Config, runner: str, lease_ms: int) -> None:
    """Vacuum the datasets of completed erasures whose privacy retention has passed: with delta-rs, whose
    vacuum lists a table's files directly (Spark's runs a job of thousands of listing tasks)."""
    from deltalake import DeltaTable

    now = now_ms()
    for job_id in store.claimable(now, vacuum=True):
        job = store.claim(job_id, runner, now + lease_ms, now, PrivacyStatus.COMPLETE)
        if job is None:
            continue
        tenant_config = config.for_tenant(job.ims_org_id, job.sandbox_name)
        paths = {path for kind in ("profile", "event", "destination") for path in readable(tenant_config, kind)}
        for path in sorted(paths):
            DeltaTable(path).vacuum(config.privacy_retention_hours, dry_run=False, enforce_retention_duration=False)
        store.save(job.updated(vacuumed=True, update_time=now_ms()), runner, None)

