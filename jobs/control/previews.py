"""Previews and estimates (docs/reference/segments.md#previews-and-estimates): the preview table, the
operations the shells call on it, and the worker that computes previews in a warm Spark session.

`POST /preview` checks the expression as a segment definition's is and stores the preview NEW; a
worker (`PreviewWorker` in `serve`, or the CLI's own session) claims it RUNNING under a lease,
evaluates the expression on a hash sample of profile keys (jobs.engine.previews) and stores
RESULT_READY with the sample's first matching profiles and the estimate, or FAILED with the
error. A preview whose worker died is claimed again once its lease has run out.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from deltalake import write_deltalake

from jobs.control.privacy_jobs import SuppressionList
from jobs.control.segments import SegmentStore
from jobs.control.tables import DeltaRows, all_of, equal, literal, retry_commits, tenant
from jobs.planner import checked_expression, preview_plan, preview_policy
from jobs.spec import (
    Config,
    NotFound,
    Preview,
    PreviewRequest,
    PreviewState,
    RequestRejected,
    Sampling,
    estimate_count,
    now_ms,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

PREVIEW_TABLE_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("imsOrgId", pa.string()),
    ("sandboxName", pa.string()),
    ("state", pa.string()),
    ("creationTime", pa.int64()),
    ("updateTime", pa.int64()),
    ("runner", pa.string()),
    ("leaseUntil", pa.int64()),
    ("record", pa.string()),
])
# Previews are a question of the moment: older ones are deleted by the worker.
PREVIEW_TTL_MS = 24 * 3600 * 1000
# A preview's lease, in leaseSeconds: a worker computes one preview at a time and renews nothing.
LEASE_FACTOR = 10


class PreviewNotFound(NotFound):
    pass


class PreviewStore(DeltaRows):
    NAME = "previews"
    SCHEMA = PREVIEW_TABLE_SCHEMA

    def add(self, preview: Preview) -> Preview:
        rows = pa.Table.from_pylist([_row(preview)], schema=PREVIEW_TABLE_SCHEMA)
        with self._lock:
            retry_commits(lambda: write_deltalake(self.path, rows, mode="append"))
        return preview

    def get(self, preview_id: str, org: str | None = None, sandbox: str | None = None) -> Preview:
        rows = self._query(f"SELECT record FROM previews WHERE {all_of(equal('id', preview_id), tenant(org, sandbox))}")
        if not rows:
            raise PreviewNotFound(f"no preview {preview_id}")
        return Preview.model_validate_json(rows[0]["record"])

    def metric_rows(self) -> list[dict[str, Any]]:
        """Previews by tenant and state (GET /metrics)."""
        return self._query("SELECT imsOrgId, sandboxName, state AS status, count(*) AS jobs "
                           "FROM previews GROUP BY imsOrgId, sandboxName, state")

    def claimable(self, now: int) -> list[str]:
        """NEW previews, and RUNNING ones whose worker's lease ran out, oldest first."""
        rows = self._query(f"SELECT id FROM previews WHERE {equal('state', PreviewState.NEW.value)} OR "
                           f"({equal('state', PreviewState.RUNNING.value)} AND leaseUntil < {literal(now)}) "
                           "ORDER BY creationTime, id")
        return [r["id"] for r in rows]

    def claim(self, preview_id: str, runner: str, lease_until: int, now: int) -> Preview | None:
        """The preview, now RUNNING under `runner`; None if another worker claimed it first."""
        free = (f"({equal('state', PreviewState.NEW.value)} OR "
                f"({equal('state', PreviewState.RUNNING.value)} AND leaseUntil < {literal(now)}))")
        preview = self.get(preview_id).updated(state=PreviewState.RUNNING, update_time=now)
        changed = self._update({"state": literal(PreviewState.RUNNING.value), "runner": literal(runner),
                                "leaseUntil": literal(lease_until), "updateTime": literal(now),
                                "record": literal(preview.to_json())}, all_of(equal("id", preview_id), free))
        return preview if changed else None

    def finish(self, preview: Preview, runner: str) -> bool:
        """Store a computed preview if `runner` still holds it (it may have been deleted meanwhile)."""
        return self._update({"state": literal(preview.state.value), "runner": "NULL", "leaseUntil": "NULL",
                             "updateTime": literal(preview.update_time), "record": literal(preview.to_json())},
                            all_of(equal("id", preview.preview_id), equal("runner", runner))) == 1

    def delete(self, preview_id: str, org: str, sandbox: str) -> None:
        where = all_of(equal("id", preview_id), tenant(org, sandbox))

        def attempt() -> int:
            table = self._table()
            return 0 if table is None else int(table.delete(where)["num_deleted_rows"])

        with self._lock:
            if not self._query(f"SELECT id FROM previews WHERE {where}"):
                raise PreviewNotFound(f"no preview {preview_id}")
            retry_commits(attempt)

    def expire(self, before: int) -> None:
        """Delete the previews created before `before` (epoch ms), in one commit if there are any."""
        where = f"creationTime < {literal(before)}"
        with self._lock:
            table = self._table()
            if table is not None and self._query(f"SELECT id FROM previews WHERE {where} LIMIT 1"):
                retry_commits(lambda: table.delete(where))


def _row(preview: Preview) -> dict[str, Any]:
    return {"id": preview.preview_id, "imsOrgId": preview.ims_org_id, "sandboxName": preview.sandbox_name,
            "state": preview.state.value, "creationTime": preview.creation_time, "updateTime": preview.update_time,
            "runner": None, "leaseUntil": None, "record": preview.to_json()}


# ---------------------------------------------------------------- operations


def create_preview(store: PreviewStore, config: Config, body: str | bytes | dict[str, Any], org: str,
                   sandbox: str) -> Preview:
    """Validate a preview request against the tenant's lake and store it NEW (RequestRejected, nothing
    stored, when it is bad: an expression's problem at predicateExpression, with its position)."""
    request = PreviewRequest.parse(body)
    scoped = config.for_tenant(org, sandbox)
    policy = preview_policy(request, scoped)
    segments = SegmentStore(config.segment_table_path).all(org, sandbox)
    checked_expression(request.predicate_expression, policy, scoped, segments)
    created = now_ms()
    preview = Preview(preview_id=uuid.uuid4().hex, ims_org_id=org, sandbox_name=sandbox, state=PreviewState.NEW,
                      predicate_expression=request.predicate_expression, graph_type=policy.identity_graph,
                      merge_strategy=policy.id, evaluation_time=created, creation_time=created, update_time=created)
    return store.add(preview)


def compute_preview(store: PreviewStore, config: Config, spark: Callable[[], SparkSession], preview: Preview,
                    runner: str) -> Preview:
    """Evaluate a claimed preview on its sample and store the outcome (RESULT_READY or FAILED)."""
    from jobs.control.failures import job_error  # these load the engine: only where previews are computed
    from jobs.engine import run_preview

    try:
        segments = SegmentStore(config.segment_table_path).all(preview.ims_org_id, preview.sandbox_name)
        suppressed = SuppressionList(config.suppression_table_path).hashes(preview.ims_org_id, preview.sandbox_name)
        plan = preview_plan(preview, config, segments, tuple(suppressed))
        result = run_preview(spark(), plan)
        fraction = plan.threshold / plan.buckets
        rows = plan.export.fragments
        done = preview.updated(
            state=PreviewState.RESULT_READY, update_time=now_ms(), results=result.profiles,
            sampling=Sampling(threshold=plan.threshold, fraction=fraction,
                              sample_key_limit=config.preview_sample_keys, total_rows=rows),
            estimate=estimate_count(result.matched, result.sampled, fraction, rows))
    except Exception as err:  # the preview must say what happened, whatever it was (the lake may have changed)
        log.warning("preview %s failed: %s", preview.preview_id, err, exc_info=not isinstance(err, RequestRejected))
        done = preview.updated(state=PreviewState.FAILED, update_time=now_ms(),
                               error=job_error(err, config.resolve("")))
    if not store.finish(done, runner):
        log.info("preview %s was deleted or taken over while it ran", preview.preview_id)
    return done


def run_previews(store: PreviewStore, config: Config, spark: Callable[[], SparkSession],
                 runner: str | None = None, expire: bool = True) -> list[Preview]:
    """Compute every preview no worker holds, oldest first; then (if `expire`) delete the expired ones."""
    runner = runner or f"previews/{uuid.uuid4().hex[:12]}"
    lease_ms = int(config.lease_seconds * 1000 * LEASE_FACTOR)
    done = []
    for preview_id in store.claimable(now_ms()):
        claimed = store.claim(preview_id, runner, now_ms() + lease_ms, now_ms())
        if claimed is not None:
            done.append(compute_preview(store, config, spark, claimed, runner))
    if expire:
        store.expire(now_ms() - PREVIEW_TTL_MS)
    return done


def settled_preview(store: PreviewStore, config: Config, spark: Callable[[], SparkSession], preview_id: str,
                    org: str, sandbox: str, poll_seconds: float = 0.5) -> Preview:
    """The tenant's preview once computed: computed here if no worker holds it, else waited for (a
    worker that dies leaves its lease to run out, and then it is computed here)."""
    runner = f"previews/{uuid.uuid4().hex[:12]}"
    while True:
        preview = store.get(preview_id, org, sandbox)
        if preview.state in (PreviewState.RESULT_READY, PreviewState.FAILED):
            return preview
        claimed = store.claim(preview_id, runner, now_ms() + int(config.lease_seconds * 1000 * LEASE_FACTOR), now_ms())
        if claimed is not None:
            return compute_preview(store, config, spark, claimed, runner)
        time.sleep(poll_seconds)


def preview_page(preview: Preview, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """GET /preview/{id}: the state and a page of the sample's matching profiles, `links.next` when
    there are more."""
    results = preview.results or []
    page = results[offset:offset + limit]
    more = offset + limit < len(results)
    answer: dict[str, Any] = {"previewId": preview.preview_id, "state": preview.state.value, "results": page,
                              "links": {"next": f"/preview/{preview.preview_id}?limit={limit}&offset={offset + limit}"}
                              if more else {}}
    if preview.error is not None:
        answer["error"] = preview.error.to_dict()
    return answer


def estimate_document(preview: Preview) -> dict[str, Any]:
    """GET /estimate/{id}: the state, and once computed the estimate and how its sample was drawn."""
    answer: dict[str, Any] = {"previewId": preview.preview_id, "state": preview.state.value,
                              "_links": {"preview": f"/preview/{preview.preview_id}"}}
    if preview.estimate is not None:
        answer.update(preview.estimate.to_dict())
    if preview.sampling is not None:
        answer["sampling"] = preview.sampling.to_dict()
    if preview.error is not None:
        answer["error"] = preview.error.to_dict()
    return answer


class PreviewWorker:
    """A background thread that computes previews as they come (behind `serve`), in the session the
    runner of jobs uses, beside it: a preview does not wait for a running export."""

    EXPIRE_EVERY_S = 3600.0

    def __init__(self, store: PreviewStore, config: Config, spark: Callable[[], SparkSession],
                 poll_seconds: float = 0.5):
        self.store, self.config, self.spark, self.poll = store, config, spark, poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="preview-worker", daemon=True)

    def _loop(self) -> None:
        runner = f"previews/{uuid.uuid4().hex[:12]}"
        expired_at = float("-inf")
        while not self._stop.is_set():
            try:
                expire = time.monotonic() - expired_at >= self.EXPIRE_EVERY_S
                run_previews(self.store, self.config, self.spark, runner, expire)
                expired_at = time.monotonic() if expire else expired_at
            except Exception:  # keep serving; the next poll tries again
                log.exception("preview worker")
            self._stop.wait(self.poll)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
