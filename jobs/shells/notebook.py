"""The product from a notebook or any Python program, in the caller's SparkSession (docs/reference/python-api.md).

    from jobs import ExportJobs

    exports = ExportJobs("conf/export.toml", spark)   # `spark`: the notebook's session
    job = exports.create({"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"},
                          "filter": {"segments": [{"segmentId": "segment-01"}]}})
    job = exports.run(job)                            # a JobRecord: job.status, job.metrics, job.errors
    exports.output(job).show()                        # the rows it wrote, as a DataFrame

The same checks, records and job table as the CLI and the HTTP API: a job created here is one that
`export-jobs get` shows, and the other way round. It never creates or stops a session it was given;
one it had to create (no `spark`) is stopped by `close()`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from jobs.control import (
    JobStore,
    SegmentStore,
    cancel_job,
    create_job,
    create_segment,
    job_event_recorder,
    one_of,
    run_job,
    run_pending,
)
from jobs.spec import (
    Config,
    ConfigError,
    JobRecord,
    JobStatus,
    LakeError,
    SegmentDefinition,
    load_config,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

Body = Mapping[str, Any] | BaseModel | str
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
# Settings a run needs that can be changed on a live session; a run sets them for its duration only
# and gives the caller's values back (jobs.engine.session.REQUIRED_CONF has the others, fixed at start).
RUN_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
}


class ExportJobs:
    """One deployment (a config) as one tenant (org and sandbox) sees it, run in one SparkSession."""

    def __init__(self, config: str | Path | Config, spark: SparkSession | None = None,
                 org: str | None = None, sandbox: str | None = None):
        self.config = config if isinstance(config, Config) else load_config(config)
        self.org, self.sandbox = self.config.acting_tenant(org, sandbox)
        if spark is not None:
            _check_session(spark)
        self._spark, self._owns_session = spark, spark is None
        self.jobs_table = JobStore(self.config.job_table_path, job_event_recorder(self.config))
        self.segment_table = SegmentStore(self.config.segment_table_path)

    # -- the session

    @property
    def spark(self) -> SparkSession:
        """The caller's session, or one started from the config on first use (and stopped by close())."""
        if self._spark is None:
            from jobs.engine import session_for

            self._spark = session_for(self.config, "export-jobs")
        return self._spark

    def close(self) -> None:
        """Stops the session this object started, if it did; a session it was given is left alone."""
        if self._owns_session and self._spark is not None:
            self._spark.stop()
            self._spark = None

    def __enter__(self) -> ExportJobs:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # -- jobs

    def create(self, definition: Body) -> JobRecord:
        """A NEW job from a definition (a dict, a JSON text or a pydantic model of one); raises
        RequestRejected naming every bad field, and stores nothing then."""
        return create_job(self.jobs_table, self.config, _body(definition), self.org, self.sandbox)

    def run(self, job: int | JobRecord) -> JobRecord:
        """Runs a NEW job in this session and returns its final record (SUCCEEDED, FAILED or CANCELLED:
        a failed job is a record with `errors`, not an exception)."""
        job_id = _job_id(job)
        self.get(job_id)  # another tenant's job is not found
        with self._run_settings():
            return run_job(self.jobs_table, self.config, job_id, spark=self.spark)

    def run_pending(self, max_jobs: int | None = None) -> list[JobRecord]:
        """Takes back lost jobs, then runs NEW jobs oldest first (every tenant's, as `run-pending`)."""
        with self._run_settings():
            return run_pending(self.jobs_table, self.config, max_jobs, spark_factory=lambda: self.spark)

    def get(self, job: int | JobRecord) -> JobRecord:
        return self.jobs_table.get(_job_id(job), self.org, self.sandbox)

    def jobs(self, status: JobStatus | str | None = None, limit: int = 50) -> list[JobRecord]:
        """The tenant's latest jobs, newest first."""
        wanted = JobStatus(status) if status is not None else None
        return self.jobs_table.list(self.org, self.sandbox, limit, status=wanted)

    def cancel(self, job: int | JobRecord) -> JobRecord:
        return cancel_job(self.jobs_table, _job_id(job), self.org, self.sandbox)

    def output(self, job: int | JobRecord) -> DataFrame:
        """The rows the job wrote: its batches in the destination dataset, read lazily in this session."""
        record = self.get(job)
        written = record.export_destination
        destination = self.config.for_tenant(self.org, self.sandbox).destination(written.dataset_id)
        if destination is None:
            raise LakeError(f"job {record.id}'s destination {written.dataset_id!r} is no longer declared")
        batches = written.batch_ids()
        rows = self.spark.read.format("delta").load(self.config.resolve(destination.path))
        return rows.where(one_of("_batchId", batches)) if batches else rows.limit(0)

    # -- segment definitions

    def create_segment(self, definition: Body) -> SegmentDefinition:
        """A segment definition (PQL), validated as the CLI and the API do."""
        return create_segment(self.segment_table, self.config, _body(definition), self.org, self.sandbox)

    def segment(self, definition_id: str) -> SegmentDefinition:
        return self.segment_table.get(definition_id, self.org, self.sandbox)

    def segments(self) -> list[SegmentDefinition]:
        """The tenant's definitions."""
        return list(self.segment_table.all(self.org, self.sandbox).values())

    @contextmanager
    def _run_settings(self) -> Iterator[None]:
        conf = self.spark.conf
        before: dict[str, str | None] = {key: conf.get(key, None) for key in RUN_SETTINGS}
        for key, value in RUN_SETTINGS.items():
            conf.set(key, value)
        try:
            yield
        finally:
            for key, earlier in before.items():
                if earlier is None:
                    conf.unset(key)
                else:
                    conf.set(key, earlier)


def _check_session(spark: SparkSession) -> None:
    """A session without Delta's extension cannot run a job: say so now, not in the middle of a run.
    Databricks runtimes have Delta built in without naming the extension."""
    if "DATABRICKS_RUNTIME_VERSION" in os.environ:
        return
    if DELTA_EXTENSION not in (spark.conf.get("spark.sql.extensions", "") or ""):
        raise ConfigError(
            f"the SparkSession has no Delta Lake extension ({DELTA_EXTENSION} in spark.sql.extensions): "
            "start it with jobs.engine.build_session, or with delta's configure_spark_with_delta_pip and the "
            "Delta catalog (docs/reference/python-api.md)"
        )


def _body(definition: Body) -> str | dict[str, Any]:
    if isinstance(definition, BaseModel):
        return definition.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return definition if isinstance(definition, str) else dict(definition)


def _job_id(job: int | JobRecord) -> int:
    return job.id if isinstance(job, JobRecord) else int(job)
