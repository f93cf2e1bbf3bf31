"""The whole export on a generated lake: create → run → destination and record agree."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from jobs.config import load_config
from jobs.model import JobStatus
from jobs.runner import run_job
from jobs.service import create_job
from jobs.store import JobStore

from ..reference import expected_members, read_rows

pytestmark = pytest.mark.spark

WINDOW = ("2024-01-01T00:00:00Z", "2024-02-15T00:00:00Z")


def definition(per_segment=False, fields="identities.id,personalEmail.address,person.name.firstName"):
    return {
        "fields": fields,
        "filter": {
            "segments": [
                {"segmentId": "segment-01", "status": ["realized"]},
                {"segmentId": "segment-02"},
            ],
            "segmentQualificationTime": {"startTime": WINDOW[0], "endTime": WINDOW[1]},
        },
        "destination": {"datasetId": "audience", "segmentPerBatch": per_segment},
        "schema": {"name": "_xdm.context.profile"},
    }


def reference(config):
    start, end = (datetime.fromisoformat(t).astimezone(timezone.utc) for t in WINDOW)
    paths = [config.resolve(d.path) for d in config.profile_datasets]
    both = expected_members(paths, [("ups", "segment-01", {"realized"}), ("ups", "segment-02", {"realized", "existing"})], start, end)
    one = expected_members(paths, [("ups", "segment-01", {"realized"})], start, end)
    two = expected_members(paths, [("ups", "segment-02", {"realized", "existing"})], start, end)
    return both, one, two


def key_of(row):
    return next((ns, i["id"]) for ns, items in row["identityMap"] for i in items if i["primary"])


def test_combined_export_matches_the_reference_and_the_record(spark, deployment):
    config = load_config(deployment)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, definition(), "demo@Org", "prod")
    done = run_job(store, config, record.id, spark)

    assert done.status is JobStatus.SUCCEEDED, done.errors
    rows = read_rows(config.resolve(config.destination_datasets[0].path))
    both, _, _ = reference(config)
    assert len(both) > 10  # the generated lake must give the test something to check
    assert {key_of(r) for r in rows} == both
    assert {r["_batchId"] for r in rows} == {record.destination.batch_id}
    metrics = done.metrics
    assert metrics.total_exported_profile_counter == len(rows) == len(both)
    namespaces = {}
    for row in rows:
        for ns, _ in row["identityMap"]:
            namespaces[ns] = namespaces.get(ns, 0) + 1
    assert metrics.exported_profile_by_namespace_counter == namespaces
    assert metrics.rejected_record_counter == 3
    assert len(metrics.rejected_records) == 3
    assert done.compute_gateway_job_id.export_job == spark.sparkContext.applicationId
    assert metrics.total_time.total_time_in_ms >= metrics.profile_export_time.total_time_in_ms > 0
    # Only the requested fields, nested; only the requested segments' memberships.
    sample = rows[0]
    assert set(sample) == {"_batchId", "identityMap", "segmentMembership", "identities", "personalEmail", "person"}
    assert set(sample["person"]) == {"name"} and set(sample["person"]["name"]) == {"firstName"}
    assert {seg for _, inner in sample["segmentMembership"] for seg, _ in inner} <= {"segment-01", "segment-02"}
    # The stored record is the one returned, and the commit names the job and its batch.
    assert store.get(record.id) == done
    commit = spark.sql(f"DESCRIBE HISTORY delta.`{config.resolve(config.destination_datasets[0].path)}`").first()
    assert json.loads(commit.userMetadata) == {"jobId": record.id, "batchIds": [record.destination.batch_id]}


def test_per_segment_export_writes_one_batch_per_segment_in_one_commit(spark, deployment):
    config = load_config(deployment)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, definition(per_segment=True), "demo@Org", "prod")
    done = run_job(store, config, record.id, spark)

    assert done.status is JobStatus.SUCCEEDED, done.errors
    path = config.resolve(config.destination_datasets[0].path)
    rows = read_rows(path)
    both, one, two = reference(config)
    b1, b2 = (b.batch_id for b in record.destination.batches)
    assert {key_of(r) for r in rows if r["_batchId"] == b1} == one
    assert {key_of(r) for r in rows if r["_batchId"] == b2} == two
    assert done.metrics.total_exported_profile_counter == len(both) < len(rows)
    assert done.metrics.exported_profile_by_segment_counter == {"ups": {"segment-01": len(one), "segment-02": len(two)}}
    assert spark.sql(f"DESCRIBE HISTORY delta.`{path}`").count() == 1


def test_rerun_after_a_crash_between_commit_and_record_does_not_duplicate(spark, deployment):
    config = load_config(deployment)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, definition(), "demo@Org", "prod")
    first = run_job(store, config, record.id, spark)
    # The crash: the commit happened but the record never left NEW.
    store.replace(record.model_copy(update={"update_time": record.update_time + 1}),
                  expected=[JobStatus.SUCCEEDED])
    again = run_job(store, config, record.id, spark)

    assert again.status is JobStatus.SUCCEEDED, again.errors
    rows = read_rows(config.resolve(config.destination_datasets[0].path))
    assert len(rows) == first.metrics.total_exported_profile_counter
    assert again.metrics.total_exported_profile_counter == first.metrics.total_exported_profile_counter
    assert again.metrics.rejected_record_counter == first.metrics.rejected_record_counter


def test_a_run_that_fails_records_an_actionable_error_and_writes_nothing(spark, deployment, lake):
    config = load_config(deployment)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, definition(), "demo@Org", "prod")
    # The field was there at creation; the lake changes before the run.
    broken = deployment.parent / "broken.toml"
    broken.write_text(deployment.read_text().replace('path = "profiles/profiles_0"', 'path = "profiles/missing"'))
    done = run_job(store, load_config(broken), record.id, spark)

    assert done.status is JobStatus.FAILED
    assert "profiles_0" in done.errors[0].msg and "no Delta table" in done.errors[0].msg
    assert "LakeError" in done.errors[0].call_stack
    assert not (deployment.parent / "out").exists()
