"""The destination: one atomic, idempotent Delta commit per job (docs/design.md#atomic-and-idempotent-output)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from jobs.engine.errors import CONCURRENT_COMMIT
from jobs.planner import EvaluationPlan, ExportPlan
from jobs.spec import JobFailure, SchemaConflict, read_delta_schema, union_schemas

HISTORY_LOOKBACK = 100  # the newest commits in which a retry looks for its own commit
TXN_VERSION = 1  # txnAppId is unique per job, so one version per app id suffices
WRITE_ATTEMPTS = 5
log = logging.getLogger(__name__)


class DestinationConflict(JobFailure):
    """The job's rows do not fit the destination's existing columns."""

    code = "DESTINATION_SCHEMA_CONFLICT"


def check_destination(rows: DataFrame, plan: ExportPlan) -> None:
    """Fail before writing anything if a column the job writes has another type in the destination.

    Adding columns and nested fields is fine (schema evolution); retyping is not.
    """
    existing = read_delta_schema(plan.destination_path)
    if existing is None:
        return
    try:
        union_schemas([("destination", existing), ("job output", rows.schema.jsonValue())])
    except SchemaConflict as err:
        raise DestinationConflict(
            f"the destination dataset's schema conflicts with this job's rows: {err}. "
            "Nothing was written; export these fields to another dataset, or choose fields that fit."
        ) from None


def committed(path: str, txn_app_id: str) -> bool:
    """True when the table at `path` has a commit of this transaction id (an earlier run's)."""
    if not DeltaTable.is_deltatable(path):
        return False
    version = DeltaTable(path).transaction_version(txn_app_id)
    return version is not None and version >= TXN_VERSION


def own_commit(path: str, user_metadata: str) -> dict[str, Any] | None:
    """The newest of the table's last HISTORY_LOOKBACK commits with this userMetadata (its version and
    operationMetrics), read from the log with delta-rs: no Spark job. None if there is none."""
    if not DeltaTable.is_deltatable(path):
        return None
    return next((c for c in DeltaTable(path).history(HISTORY_LOOKBACK) if c.get("userMetadata") == user_metadata),
                None)


def already_committed(plan: ExportPlan) -> bool:
    """True when an earlier run of this job committed its batches (a retry after a crash)."""
    return committed(plan.destination_path, plan.txn_app_id)


def writeback_committed(plan: ExportPlan) -> bool:
    """True when an earlier run of this evaluating job wrote its memberships back (a segment job's commit)."""
    assert plan.evaluation is not None
    return committed(plan.evaluation.writeback_path, plan.evaluation.writeback_txn_app_id)


def write_batches(rows: DataFrame, plan: ExportPlan) -> None:
    """Append all of the job's batches in one commit, after checking that they fit the destination.

    New columns and nested fields are added (schema evolution); Delta skips the
    write if this job's txnAppId already committed, so a rerun cannot duplicate rows.
    """
    check_destination(rows, plan)
    append(rows, plan.destination_path, plan.txn_app_id, plan.user_metadata, plan.job_id)


def write_memberships(rows: DataFrame, evaluation: EvaluationPlan, job_id: int) -> None:
    """Append an evaluation's changed memberships to the segmentation dataset, in one commit."""
    append(rows, evaluation.writeback_path, evaluation.writeback_txn_app_id, evaluation.writeback_metadata, job_id)


def append(rows: DataFrame, path: str, txn_app_id: str, user_metadata: str, job_id: int) -> None:
    """One idempotent Delta append (a txnAppId commits once), retried while it loses races."""
    writer = (
        rows.write.format("delta")
        .mode("append")
        .option("mergeSchema", "true")
        .option("txnAppId", txn_app_id)
        .option("txnVersion", TXN_VERSION)
        .option("userMetadata", user_metadata)
    )
    retried(lambda: writer.save(path), path, job_id)


def retried(commit: Callable[[], None], path: str, job_id: int) -> None:
    """Runs an idempotent `commit` to the table at `path`, again while it loses races: another job
    committed to the same table first (e.g. both created it, or both evolved its schema)."""
    for attempt in range(WRITE_ATTEMPTS):
        try:
            commit()
            return
        except CONCURRENT_COMMIT:
            if attempt + 1 == WRITE_ATTEMPTS:
                raise
            log.info("job %s: concurrent commit to %s, retrying", job_id, path)


@contextmanager
def session_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """The settings for the block's Delta commits, restored after it. Delta reads a DML command's
    transaction id and metadata from the session only; the runner's thread is the only one that
    commits in it."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, previous in before.items():
            if previous is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, previous)
