"""Privacy jobs: the `privacyTable`, the suppression list, and running access and delete requests
(docs/reference/privacy.md#privacy-requests).

A request becomes one job per user, stored as `processing`. A runner (`run-pending`, `serve`)
claims the processing jobs of a tenant as one batch (`privacyBatchSize`) with a lease, resolves their
identities in one scan per dataset, and then, each step recorded for the whole batch before the next:
- access: one JSON document per person with every fragment, event, membership and destination row;
- delete: the identities' salted hashes join the suppression list (every export from then on leaves
  their records out), exports that were already running finish, and one Delta commit per dataset of the
  tenant (profile, event, segmentation, destination) removes every person of the batch.
A retry after a crash takes the same batch and repeats only what has no receipt yet; a delete that did
commit is found in the dataset's history (its commit names the batch), so nothing is deleted or counted twice.
Later, the data files the deletes removed are vacuumed (`privacyRetentionHours`).
"""

from __future__ import annotations

import builtins
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from deltalake import write_deltalake

from jobs.control.jobs import JobStore
from jobs.control.pages import CursorFormat, cursor_page
from jobs.control.tables import DeltaRows, all_of, before, equal, literal, one_of, retry_commits, tenant
from jobs.control.webhooks import record_events
from jobs.spec import (
    Config,
    Dataset,
    JobStatus,
    LakeError,
    NotFound,
    PrivacyJob,
    PrivacyRequest,
    PrivacyStatus,
    Receipt,
    RequestRejected,
    UserId,
    identity_hash,
    now_ms,
    privacy_event,
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
# A privacy job's lease, in leaseSeconds: one dataset's delete may take minutes, and a second
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

    def metric_rows(self, now: int) -> builtins.list[dict[str, Any]]:
        """Privacy jobs by tenant and status, and how many of them wait for a runner (GET /metrics)."""
        waiting = all_of(equal("status", PrivacyStatus.PROCESSING.value), _free(now))
        return self._query(f"SELECT imsOrgId, sandboxName, status, count(*) AS jobs, "
                           f"sum(CASE WHEN {waiting} THEN 1 ELSE 0 END) AS waiting "
                           "FROM privacy GROUP BY imsOrgId, sandboxName, status")

    def batches(self, now: int, size: int) -> builtins.list[builtins.list[str]]:
        """The processing jobs no runner holds (or whose runner's lease ran out), as batches to run
        together, oldest first: a batch an earlier run began, whole, and the others by tenant, `size`
        at most."""
        rows = self._query(f"SELECT id, imsOrgId, sandboxName, record FROM privacy WHERE "
                           f"{equal('status', 'processing')} AND {_free(now)} ORDER BY creationTime, id")
        begun: dict[str, builtins.list[str]] = {}
        fresh: dict[tuple[str, str], builtins.list[str]] = {}
        for row in rows:
            batch = json.loads(row["record"]).get("batchId")
            if batch:
                begun.setdefault(batch, []).append(row["id"])
            else:
                fresh.setdefault((row["imsOrgId"], row["sandboxName"]), []).append(row["id"])
        return [*begun.values(), *(ids[i:i + size] for ids in fresh.values() for i in range(0, len(ids), size))]

    def vacuums_due(self, now: int) -> builtins.list[str]:
        """Complete jobs whose erasure's files are due to be vacuumed by now, that no runner holds."""
        rows = self._query(f"SELECT id FROM privacy WHERE vacuumAfter <= {literal(now)} AND {_free(now)} "
                           "ORDER BY creationTime, id")
        return [r["id"] for r in rows]

    def claim(self, job_ids: Sequence[str], runner: str, lease_until: int, now: int,
              status: PrivacyStatus = PrivacyStatus.PROCESSING) -> builtins.list[PrivacyJob]:
        """Those of the jobs that are in `status` and that no runner holds, now held by `runner` (a name
        of this claim's own), in one commit."""
        predicate = all_of(one_of("id", job_ids), equal("status", status.value), _free(now))
        if self._update({"runner": literal(runner), "leaseUntil": literal(lease_until)}, predicate) == 0:
            return []
        rows = self._query(f"SELECT record FROM privacy WHERE {equal('runner', runner)} ORDER BY creationTime, id")
        return [PrivacyJob.model_validate_json(r["record"]) for r in rows]

    def save(self, jobs: builtins.list[PrivacyJob], runner: str, lease_until: int | None) -> builtins.list[PrivacyJob]:
        """Write the runner's jobs in one commit: a finished one given up, the others with their lease
        renewed to `lease_until` (all given up with None). LostPrivacyJob if another runner took one
        over meanwhile; the others are written all the same."""
        rows = []
        for job in jobs:
            held = lease_until is not None and job.status is PrivacyStatus.PROCESSING
            rows.append({**_row(job), "runner": runner if held else None, "leaseUntil": lease_until if held else None})

        def attempt() -> int:
            table = self._table()
            assert table is not None, "a privacy job is saved after it was added"
            source = pa.Table.from_pylist(rows, schema=PRIVACY_TABLE_SCHEMA)
            metrics = (table.merge(source, predicate=f"t.id = s.id AND t.runner = {literal(runner)}",
                                   source_alias="s", target_alias="t")
                       .when_matched_update({c: f"s.{c}" for c in ("status", "updateTime", "vacuumAfter", "record",
                                                                   "runner", "leaseUntil")})
                       .execute())
            return int(metrics["num_target_rows_updated"])

        with self._lock:
            saved = retry_commits(attempt)
        if saved != len(jobs):
            raise LostPrivacyJob(f"{len(jobs) - saved} of privacy jobs {', '.join(j.job_id for j in jobs)} "
                                 "were taken over by another runner")
        return jobs


def _free(now: int) -> str:
    return f"(runner IS NULL OR leaseUntil < {literal(now)})"


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

    def add(self, org: str, sandbox: str, hashes: Mapping[str, Sequence[tuple[str, str]]]) -> None:
        """(namespace, hash) pairs by privacy job, each hash once per tenant (a retry adds nothing)."""
        added = now_ms()
        first: dict[str, tuple[str, str]] = {}
        for job_id, pairs in hashes.items():
            for ns, h in pairs:
                first.setdefault(h, (job_id, ns))
        rows = pa.Table.from_pylist([{"imsOrgId": org, "sandboxName": sandbox, "namespace": ns.lower(), "hash": h,
                                      "jobId": job_id, "time": added} for h, (job_id, ns) in sorted(first.items())],
                                    schema=SUPPRESSION_SCHEMA)

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


def access_document(store: PrivacyStore, job_id: str, org: str, sandbox: str) -> dict[str, Any]:
    """The access document of the tenant's privacy job (its `downloadURL`)."""
    job = store.get(job_id, org, sandbox)
    if job.access_document is None:
        raise PrivacyJobNotFound(f"privacy job {job_id} has no access document: it asks for no access, or has "
                                 f"not written it yet (status {job.status.value})")
    try:
        document: dict[str, Any] = json.loads(Path(job.access_document).read_text())
    except FileNotFoundError:
        raise PrivacyJobNotFound(f"the access document of privacy job {job_id} was removed from "
                                 f"{job.access_document}") from None
    return document


# ---------------------------------------------------------------- runs


SparkFactory = Callable[[], "SparkSession"]


def run_privacy_jobs(store: PrivacyStore, config: Config, spark: SparkFactory, runner: str,
                     jobs: JobStore | None = None) -> builtins.list[PrivacyJob]:
    """Run every privacy job no runner holds, batch by batch, oldest first; then vacuum what erasures
    left to vacuum."""
    done = []
    lease_ms = int(config.lease_seconds * 1000 * LEASE_FACTOR)
    for batch in store.batches(now_ms(), config.privacy_batch_size):
        claim = f"{runner}/{uuid.uuid4().hex[:12]}"
        claimed = store.claim(batch, claim, now_ms() + lease_ms, now_ms())
        if not claimed:
            continue  # another runner claimed them first
        try:
            done.extend(PrivacyRun(store, config, spark, claim, lease_ms, jobs).run(claimed))
        except LostPrivacyJob as lost:  # the other runner repeats only what has no receipt
            log.warning("%s", lost)
    vacuum_due(store, config, runner, lease_ms)
    return done


class PrivacyRun:
    """A batch of privacy jobs of one tenant, run by the runner that holds them: one scan per dataset to
    find the people, one delete commit per dataset to erase them, each step saved for all before the next."""

    def __init__(self, store: PrivacyStore, config: Config, spark: SparkFactory, runner: str, lease_ms: int,
                 jobs: JobStore | None):
        self.store, self.spark, self.runner, self.lease_ms = store, spark, runner, lease_ms
        self.base = config
        self.jobs = jobs or JobStore(config.job_table_path)
        self.state: dict[str, PrivacyJob] = {}

    def save(self, jobs: Sequence[PrivacyJob], stage: str | None = None) -> builtins.list[PrivacyJob]:
        """The jobs, saved (with `stage` if given, while they run) and their leases renewed."""
        if stage:
            log.info("privacy jobs %s: %s", ", ".join(j.job_id for j in jobs), stage)
        updated = [j.updated(update_time=now_ms(), **({"stage": stage} if stage else {})) for j in jobs]
        self.store.save(updated, self.runner, now_ms() + self.lease_ms)
        self.state.update((j.job_id, j) for j in updated)
        return updated

    def running(self) -> builtins.list[PrivacyJob]:
        return [j for j in self.state.values() if j.status is PrivacyStatus.PROCESSING]

    def run(self, claimed: builtins.list[PrivacyJob]) -> builtins.list[PrivacyJob]:
        batch_id = claimed[0].batch_id or str(uuid.uuid4())
        self.save([j.updated(attempts=j.attempts + 1, batch_id=batch_id) for j in claimed], "resolving identities")
        config = self.base.for_tenant(claimed[0].ims_org_id, claimed[0].sandbox_name)
        try:
            session = self.spark()
            self.resolve(session, config)
            if wanted := [j for j in self.running() if "access" in j.user.action and j.access_document is None]:
                self.access(session, wanted, config)
            if erasing := [j for j in self.running() if j.deletes]:
                self.erase(session, erasing, config, batch_id)
            retention_ms = config.privacy_retention_hours * 3_600_000
            completed = self.save([j.updated(status=PrivacyStatus.COMPLETE, stage=None,
                                             vacuum_after=now_ms() + retention_ms if j.deletes else None,
                                             vacuumed=False if j.deletes else None) for j in self.running()])
            record_events(self.base, [privacy_event(self.base.deployment, j) for j in completed])
        except LostPrivacyJob:
            raise
        except Exception as err:  # the jobs must say what happened, whatever it was
            from jobs.control.failures import job_error

            log.error("privacy jobs of batch %s failed: %s", batch_id, err, exc_info=err)
            error = job_error(err, config.resolve(""))
            self.save([j.updated(status=PrivacyStatus.ERROR, stage=None, errors=[*j.errors, error])
                       for j in self.running()])
        return list(self.state.values())

    def resolve(self, session: SparkSession, config: Config) -> None:
        """Each job's identities: the user's and their profile keys, or with expandIds their component
        (one scan a round for the whole batch). A person whose component is too large fails alone."""
        from jobs.control.failures import job_error
        from jobs.engine import privacy as engine

        pending = [j for j in self.running() if j.identities is None]
        if not pending:
            return
        resolved: dict[str, builtins.list[UserId] | LakeError] = {}
        if expanding := {j.job_id: j.user.user_ids for j in pending if j.expand_ids}:
            resolved.update(engine.expanded_identities(
                session, readable(config, "profile") + readable(config, "event"), expanding,
                config.max_identities_per_graph, config.max_graph_iterations))
        if plain := {j.job_id: j.user.user_ids for j in pending if not j.expand_ids}:
            # The component holds the profile keys of its fragments already: no second scan for them.
            resolved.update(engine.with_profile_keys(session, readable(config, "profile"), plain))
        self.save([j.updated(status=PrivacyStatus.ERROR, stage=None,
                             errors=[*j.errors, job_error(found, config.resolve(""))])
                   if isinstance(found, LakeError) else j.updated(identities=found)
                   for j in pending for found in [resolved[j.job_id]]])

    def access(self, session: SparkSession, wanted: builtins.list[PrivacyJob], config: Config) -> None:
        """One JSON document per job, written atomically: every row of the person in every dataset."""
        from jobs.engine import privacy as engine

        self.save(wanted, "writing the access documents")
        people = {j.job_id: j.identities or [] for j in wanted}
        sections: dict[str, dict[str, dict[str, builtins.list[Any]]]] = {}
        for section, kind in (("profileFragments", "profile"), ("events", "event"), ("destinations", "destination")):
            sections[section] = {dataset_id: engine.rows_by_person(session, path, people)
                                 for dataset_id, path in datasets(config, kind)}
        folder = Path(config.privacy_documents_path)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for job in wanted:
            document: dict[str, Any] = {
                "jobId": job.job_id, "key": job.user.key, "regulation": job.regulation,
                "identities": [i.model_dump(by_alias=True) for i in job.identities or []],
                **{section: {dataset_id: found[job.job_id] for dataset_id, found in by_dataset.items()}
                   for section, by_dataset in sections.items()}}
            target = folder / f"{job.job_id}.json"
            partial = folder / f".{job.job_id}.json.partial"
            partial.write_text(json.dumps(document, indent=2, sort_keys=True, default=str))
            partial.replace(target)  # readers see the whole document or none
            rows = sum(len(found[job.job_id]) for by_dataset in sections.values() for found in by_dataset.values())
            receipt = Receipt(dataset_id="access", kind="access", rows_affected=rows, time=now_ms(), path=str(target))
            written.append(job.updated(access_document=str(target), download_url=f"/privacy/jobs/{job.job_id}/document",
                                       receipts=[*job.receipts, receipt]))
        self.save(written)

    def erase(self, session: SparkSession, erasing: builtins.list[PrivacyJob], config: Config, batch_id: str) -> None:
        from jobs.engine import privacy as engine

        if unlisted := [j for j in erasing if j.receipt("suppression", "suppression") is None]:
            self.save(unlisted, "adding the identities to the suppression list")
            suppression = SuppressionList(config.suppression_table_path)
            hashes = {j.job_id: [(i.namespace, identity_hash(config.salt, i.namespace, i.value))
                                 for i in j.identities or []] for j in unlisted}
            suppression.add(unlisted[0].ims_org_id, unlisted[0].sandbox_name, hashes)
            added = now_ms()
            erasing = self.save([j.updated(receipts=[*j.receipts, Receipt(
                dataset_id="suppression", kind="suppression", rows_affected=len(hashes[j.job_id]), time=added)])
                for j in unlisted]) + [j for j in erasing if j not in unlisted]
        since = max(r.time for j in erasing for r in j.receipts if r.kind == "suppression")
        erasing = self.save(erasing, "waiting for the exports that started before the erasure")
        erasing = self.wait_for_exports(erasing, since)
        for kind in ("profile", "event", "destination"):
            for dataset_id, path in datasets(config, kind):
                pending = [j for j in erasing if j.receipt(dataset_id, kind) is None]
                if not pending:
                    continue
                self.save(pending, f"deleting from {dataset_id}")
                counts, version = engine.erase(session, path, {j.job_id: j.identities or [] for j in pending},
                                               batch_id)
                done = now_ms()
                self.save([j.updated(receipts=[*j.receipts, Receipt(
                    dataset_id=dataset_id, kind=kind, rows_affected=counts[j.job_id], version=version, time=done)])
                    for j in pending])
                erasing = [self.state[j.job_id] for j in erasing]

    def wait_for_exports(self, erasing: builtins.list[PrivacyJob], since: int) -> builtins.list[PrivacyJob]:
        """Until every export job of the tenant claimed before `since` has finished: one that started
        later read the suppression list, and one that started earlier then has its commit before
        this batch's delete from the destinations, which removes the people from it."""
        deadline = time.monotonic() + EXPORT_WAIT_S
        org, sandbox = erasing[0].ims_org_id, erasing[0].sandbox_name
        while True:
            running = [r for r in self.jobs.unfinished(org, sandbox)
                       if r.status is not JobStatus.NEW and r.metrics.total_time is not None
                       and r.metrics.total_time.start_time_in_ms < since]
            if not running:
                return erasing
            if time.monotonic() > deadline:
                raise RuntimeError(f"export jobs {', '.join(str(r.id) for r in running)} still run after "
                                   f"{EXPORT_WAIT_S:.0f} s; the erasure is retried later")
            erasing = self.save(erasing)  # renew the leases
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
    due = store.vacuums_due(now)
    claim = f"{runner}/{uuid.uuid4().hex[:12]}"
    claimed = store.claim(due, claim, now + lease_ms, now, PrivacyStatus.COMPLETE) if due else []
    tenants = {(job.ims_org_id, job.sandbox_name) for job in claimed}
    paths = {path for org, sandbox in tenants for kind in ("profile", "event", "destination")
             for path in readable(config.for_tenant(org, sandbox), kind)}
    for path in sorted(paths):
        DeltaTable(path).vacuum(config.privacy_retention_hours, dry_run=False, enforce_retention_duration=False)
    if claimed:
        store.save([job.updated(vacuumed=True, update_time=now_ms()) for job in claimed], claim, None)
