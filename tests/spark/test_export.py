"""The whole export on a generated lake: create → run → destination and record agree."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import pytest

from jobs.control import JobStore, create_job, run_job
from jobs.engine import export, segments
from jobs.spec import JobStatus, load_config

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
    start, end = (datetime.fromisoformat(t).astimezone(UTC) for t in WINDOW)
    paths = [config.resolve(d.path) for d in config.profile_datasets]
    both = expected_members(paths, [("ups", "segment-01", {"realized"}),
                                    ("ups", "segment-02", {"realized", "existing"})], start, end)
    one = expected_members(paths, [("ups", "segment-01", {"realized"})], start, end)
    two = expected_members(paths, [("ups", "segment-02", {"realized", "existing"})], start, end)
    return both, one, two


@pytest.fixture(params=["every key", "candidate keys"])
def merge_path(request, monkeypatch):
    """Run an export through both merge paths: every key, or only keys that may qualify."""
    monkeypatch.setattr(segments, "NARROW_SHARE", 0.0 if request.param == "every key" else 1.0)
    return request.param


def key_of(row):
    return next((ns, i["id"]) for ns, items in row["identityMap"] for i in items if i["primary"])


def test_combined_export_matches_the_reference_and_the_record(spark, deployment, merge_path):
    config = load_config(deployment)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, definition(), "demo@Org", "prod")
    done = run_job(store, config, record.id, spark)

    assert done.status is JobStatus.SUCCEEDED, done.errors
    rows = read_rows(config.resolve(config.destination_datasets[0].path))
    both, _, _ = reference(config)
    assert len(both) > 10  # the generated lake must give the test something to check
    assert {key_of(r) for r in rows} == both
    assert {r["_batchId"] for r in rows} == {record.export_destination.batch_id}
    metrics = done.metrics
    assert metrics.total_exported_profile_counter == len(rows) == len(both)
    assert metrics.exported_profile_by_segment_counter is None and done.warnings is None
    namespaces: dict[str, int] = {}
    for row in rows:
        for ns, _ in row["identityMap"]:
            namespaces[ns] = namespaces.get(ns, 0) + 1
    assert metrics.exported_profile_by_namespace_counter == namespaces
    assert metrics.rejected_record_counter == 3
    assert metrics.rejected_records is not None
    assert len(metrics.rejected_records) == 3
    # Their identities show namespaces and hashed ids (exampleIds = "hashed", the default), as spec.hashed_id does.
    shown = [i for r in metrics.rejected_records for i in json.loads(r.record)["identities"] or ()]
    assert shown and all(i["id"].startswith("sha256:") and len(i["id"]) == 23 for i in shown)
    assert done.compute_gateway_job_id.export_job == spark.sparkContext.applicationId
    assert metrics.total_time is not None and metrics.profile_export_time is not None
    total_ms, export_ms = metrics.total_time.total_time_in_ms, metrics.profile_export_time.total_time_in_ms
    assert total_ms is not None and export_ms is not None
    assert total_ms >= export_ms > 0
    # Only the requested fields, nested; only the requested segments' memberships.
    sample = rows[0]
    assert set(sample) == {"_batchId", "identityMap", "segmentMembership", "identities", "personalEmail", "person"}
    assert set(sample["person"]) == {"name"} and set(sample["person"]["name"]) == {"firstName"}
    assert {seg for _, inner in sample["segmentMembership"] for seg, _ in inner} <= {"segment-01", "segment-02"}
    # The stored record is the one returned, and the commit names the job, its batch and what it read.
    assert store.get(record.id) == done
    commit = spark.sql(f"DESCRIBE HISTORY delta.`{config.resolve(config.destination_datasets[0].path)}`").first()
    assert done.inputs is not None
    assert done.inputs.versions == {d.id: 0 for d in [*config.profile_datasets, *config.event_datasets]}
    assert json.loads(commit.userMetadata) == {"jobId": record.id, "batchIds": [record.export_destination.batch_id],
                                               "inputVersions": done.inputs.versions}


def test_a_misspelt_segment_is_warned_about_at_creation_and_noted_after_the_run(spark, deployment):
    config = load_config(deployment)
    store = JobStore(config.job_table_path)
    body = definition()
    body["filter"]["segments"][1]["segmentId"] = "segmnt-02"
    record = create_job(store, config, body, "demo@Org", "prod")
    assert [(w.code, w.path) for w in record.warnings or ()] == [("UNKNOWN_SEGMENT", "filter.segments[1].segmentId")]
    assert record.warnings is not None and record.warnings[0].msg.endswith("did you mean 'segment-02'?")

    done = run_job(store, config, record.id, spark)
    assert done.status is JobStatus.SUCCEEDED, done.errors
    assert [(w.code, w.path) for w in done.warnings or ()] == [("UNKNOWN_SEGMENT", "filter.segments[1].segmentId"),
                                                                ("SEGMENT_MATCHED_NOTHING", "filter.segments[1]")]


def test_per_segment_export_writes_one_batch_per_segment_in_one_commit(spark, deployment, merge_path):
    config = load_config(deployment)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, definition(per_segment=True), "demo@Org", "prod")
    done = run_job(store, config, record.id, spark)

    assert done.status is JobStatus.SUCCEEDED, done.errors
    path = config.resolve(config.destination_datasets[0].path)
    rows = read_rows(path)
    both, one, two = reference(config)
    assert record.export_destination.batches is not None
    b1, b2 = (b.batch_id for b in record.export_destination.batches)
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
    store.replace(record.updated(update_time=record.update_time + 1),
                  expected=[JobStatus.SUCCEEDED])
    again = run_job(store, config, record.id, spark)

    assert again.status is JobStatus.SUCCEEDED, again.errors
    rows = read_rows(config.resolve(config.destination_datasets[0].path))
    assert len(rows) == first.metrics.total_exported_profile_counter
    assert again.metrics.total_exported_profile_counter == first.metrics.total_exported_profile_counter
    assert again.metrics.rejected_record_counter == first.metrics.rejected_record_counter


def test_a_run_whose_write_delta_skips_reports_the_committed_figures(spark, deployment, monkeypatch):
    # Another run of the job commits between this run's check and its write: Delta skips
    # the write, so the write's observations never fire, and the run must not wait for them.
    config = load_config(deployment)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, definition(per_segment=True), "demo@Org", "prod")
    first = run_job(store, config, record.id, spark)
    store.replace(record.updated(update_time=record.update_time + 1),
                  expected=[JobStatus.SUCCEEDED])
    monkeypatch.setattr(export, "already_committed", lambda plan: False)
    again = run_job(store, config, record.id, spark)

    assert again.status is JobStatus.SUCCEEDED, again.errors
    rows = read_rows(config.resolve(config.destination_datasets[0].path))
    assert first.metrics.exported_profile_by_segment_counter is not None
    assert len(rows) == sum(first.metrics.exported_profile_by_segment_counter["ups"].values())
    for name in ("total_exported_profile_counter", "exported_profile_by_namespace_counter",
                 "exported_profile_by_segment_counter", "rejected_record_counter"):
        assert getattr(again.metrics, name) == getattr(first.metrics, name), name


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


def run(spark, deployment, body, conf=None):
    config = load_config(conf or deployment)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, body, "demo@Org", "prod")
    return config, record, run_job(store, config, record.id, spark)


def test_events_and_empty_profiles_are_exported_with_each_profile(spark, deployment, lake):
    _, spec = lake
    body = {
        "fields": "person.name.firstName",
        "filter": {"emptyProfiles": True},
        "additionalFields": {"eventList": {"fields": "_id, timestamp, web.webPageDetails.URL",
                                           "filter": {"fromIngestTimestamp": "2024-01-20T00:00:00Z"}}},
        "destination": {"datasetId": "audience"},
        "schema": {"name": "_xdm.context.profile"},
    }
    config, _, done = run(spark, deployment, body)
    assert done.status is JobStatus.SUCCEEDED, done.errors
    rows = read_rows(config.resolve(config.destination_datasets[0].path))
    assert len(rows) == spec.profiles + spec.empty_profiles == done.metrics.total_exported_profile_counter

    low = datetime(2024, 1, 20, tzinfo=UTC)
    expected: dict = {}
    for event in read_rows(config.resolve(config.event_datasets[0].path)):
        if event["_ingestTime"].replace(tzinfo=UTC) > low:
            expected.setdefault(key_of(event), []).append((event["timestamp"], event["_id"]))
    empty = [r for r in rows if r["person"] is None and not r["segmentMembership"]]
    assert len(empty) == spec.empty_profiles
    for row in rows:
        got = [(e["timestamp"], e["_id"]) for e in row["events"]]
        assert got == sorted(expected.get(key_of(row), []))
        assert all(set(e) == {"_id", "timestamp", "web"} for e in row["events"])
    # Keys without events in the window are still exported, with an empty list.
    assert any(r["events"] == [] for r in rows)


def test_empty_profiles_are_not_exported_when_segments_are_named(spark, deployment, lake):
    body = dict(definition(), filter={"segments": [{"segmentId": "segment-01"}], "emptyProfiles": True})
    config, _, done = run(spark, deployment, body)
    assert done.status is JobStatus.SUCCEEDED, done.errors
    rows = read_rows(config.resolve(config.destination_datasets[0].path))
    assert rows and all(r["segmentMembership"] for r in rows)


def test_dataset_precedence_leaves_out_datasets_outside_its_order(spark, deployment, lake):
    only_second = deployment.parent / "precedence.toml"
    only_second.write_text(deployment.read_text().replace(
        'order = ["profiles_1", "profiles_0"]', 'order = ["profiles_1"]'))
    body = {"fields": "personalEmail.address, loyalty.tier",
            "mergePolicy": {"id": "dataSetPrecedence-mp", "version": 1},
            "destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
    config, _, done = run(spark, deployment, body, conf=only_second)
    assert done.status is JobStatus.SUCCEEDED, done.errors
    rows = read_rows(config.resolve(config.destination_datasets[0].path))
    second = {key_of(r) for r in read_rows(config.resolve(config.profile_datasets[1].path))}
    assert {key_of(r) for r in rows} == second
    assert "person" not in rows[0]  # columns only profiles_0 has are not part of the merged schema


def test_a_destination_column_of_another_type_fails_the_job_and_writes_nothing(spark, deployment):
    config = load_config(deployment)
    path = config.resolve(config.destination_datasets[0].path)
    spark.createDataFrame([("x", "not a struct")], "_batchId string, personalEmail string") \
        .write.format("delta").save(path)
    _, _, done = run(spark, deployment, definition())
    assert done.status is JobStatus.FAILED
    error = done.errors[0]
    assert error.code == "DESTINATION_SCHEMA_CONFLICT"
    assert "personalEmail" in error.msg and "Nothing was written" in error.msg
    assert len(read_rows(path)) == 1


def test_a_job_table_made_again_never_reuses_the_transaction_ids_of_the_one_before(spark, deployment):
    """Job ids start again at 1 in a new job table; its deployment id is new, so its job 1 exports
    instead of finding "already committed" the commit of the old table's job 1."""
    config = load_config(deployment)
    first = JobStore(config.job_table_path)
    done = run_job(first, config, create_job(first, config, definition(), "demo@Org", "prod").id, spark)
    old_deployment = first.deployment(config.deployment)
    shutil.rmtree(config.job_table_path)

    again = JobStore(config.job_table_path)
    record = create_job(again, config, definition(), "demo@Org", "prod")
    assert record.id == done.id == 1
    redone = run_job(again, config, record.id, spark)

    assert again.deployment(config.deployment) not in (old_deployment, config.deployment)
    assert redone.status is JobStatus.SUCCEEDED, redone.errors
    exported = done.metrics.total_exported_profile_counter
    assert exported is not None and redone.metrics.total_exported_profile_counter == exported > 0
    assert len(read_rows(config.resolve(config.destination_datasets[0].path))) == 2 * exported
