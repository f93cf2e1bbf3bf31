"""The destination: one atomic, idempotent Delta commit per job (README, "Atomic and idempotent output")."""

from __future__ import annotations

import logging

from deltalake import DeltaTable
from pyspark.sql import DataFrame

from jobs.engine.errors import CONCURRENT_COMMIT
from jobs.plan import ExportPlan
from jobs.schema import SchemaConflict, read_delta_schema, union_schemas

TXN_VERSION = 1  # txnAppId is unique per job, so one version per app id suffices
WRITE_ATTEMPTS = 5
log = logging.getLogger(__name__)


class DestinationConflict(Exception):
    """The job's rows do not fit the destination's existing columns."""


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


def already_committed(plan: ExportPlan) -> bool:
    """True when an earlier run of this job committed its batches (a retry after a crash)."""
    if not DeltaTable.is_deltatable(plan.destination_path):
        return False
    version = DeltaTable(plan.destination_path).transaction_version(plan.txn_app_id)
    return version is not None and version >= TXN_VERSION


def write_batches(rows: DataFrame, plan: ExportPlan) -> None:
    """Append all of the job's batches in one commit.

    New columns and nested fields are added (schema evolution); Delta skips the
    write if this job's txnAppId already committed, so a rerun cannot duplicate rows.
    """
    check_destination(rows, plan)
    writer = (
        rows.write.format("delta")
        .mode("append")
        .option("mergeSchema", "true")
        .option("txnAppId", plan.txn_app_id)
        .option("txnVersion", TXN_VERSION)
        .option("userMetadata", plan.user_metadata)
    )
    for attempt in range(WRITE_ATTEMPTS):
        try:
            writer.save(plan.destination_path)
            return
        except CONCURRENT_COMMIT:
            # Another job committed to the same destination first (e.g. both created
            # the table, or both evolved its schema): the write is idempotent, so retry.
            if attempt + 1 == WRITE_ATTEMPTS:
                raise
            log.info("job %s: concurrent commit to the destination, retrying", plan.job_id)
