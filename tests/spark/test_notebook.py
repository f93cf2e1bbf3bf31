"""The Python API in the caller's own SparkSession (the shared test session): create, run, read back."""

from __future__ import annotations

import pytest

from jobs import ExportJobs
from jobs.control import JobStore
from jobs.spec import ConfigError, JobRecord, JobStatus, SegmentDefinition, UsageError, load_config, parse_definition

pytestmark = pytest.mark.spark

JOB = {
    "fields": "identities.id,personalEmail.address",
    "filter": {"segments": [{"segmentId": "segment-01"}]},
    "destination": {"datasetId": "audience"},
    "schema": {"name": "_xdm.context.profile"},
}
SEGMENT = {
    "name": "gold",
    "expression": {"type": "PQL", "format": "pql/text", "value": 'loyalty.tier = "gold"'},
    "schema": {"name": "_xdm.context.profile"},
}


def test_a_job_created_and_run_in_the_callers_session(spark, deployment):
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        exports = ExportJobs(deployment, spark)
        created = exports.create(JOB)
        ran = exports.run(created)
        assert isinstance(ran, JobRecord) and ran.status is JobStatus.SUCCEEDED, ran.errors
        # The same job table as the CLI's, and the caller's session as it was: running, its time zone back.
        assert JobStore(load_config(deployment).job_table_path).get(ran.id, exports.org, exports.sandbox) == ran
        assert spark.conf.get("spark.sql.session.timeZone") == "America/New_York"
        rows = exports.output(ran)
        assert rows.count() == ran.metrics.total_exported_profile_counter and rows.count() > 0
        assert {r["_batchId"] for r in rows.select("_batchId").collect()} == {ran.export_destination.batch_id}
        assert [j.id for j in exports.jobs(status="SUCCEEDED")] == [ran.id]
        exports.close()
        assert spark.range(3).count() == 3  # close() leaves a session it was given alone
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_a_job_from_a_pydantic_model_and_a_cancel(spark, deployment):
    exports = ExportJobs(deployment, spark)
    created = exports.create(parse_definition(JOB))
    assert created.status is JobStatus.NEW and created.fields == JOB["fields"]
    assert exports.cancel(created.id).status is JobStatus.CANCELLED


def test_segment_definitions(spark, deployment):
    exports = ExportJobs(deployment, spark)
    created = exports.create_segment(SEGMENT)
    assert isinstance(created, SegmentDefinition)
    # The segment table is the shared lake's: other tests' definitions may be there too.
    assert exports.segment(created.id) == created and created in exports.segments()


def test_an_org_the_deployment_does_not_have_is_refused(spark, deployment):
    with pytest.raises(UsageError, match="'nobody@Org' with sandbox"):
        ExportJobs(deployment, spark, org="nobody@Org")


class SessionWithoutDelta:
    class conf:  # the shape of SparkSession.conf
        @staticmethod
        def get(key: str, default: str | None = None) -> str | None:
            return default


def test_a_session_without_delta_is_refused_before_any_run(deployment, monkeypatch):
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    with pytest.raises(ConfigError, match="no Delta Lake extension"):
        ExportJobs(deployment, SessionWithoutDelta())  # type: ignore[arg-type]
