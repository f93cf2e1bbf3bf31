"""Evaluating exports on the generated lake: evaluated members match a plain-Python reference,
the write-back makes the next evaluation see `existing`, a crash between the two commits is
repaired by a rerun that writes neither twice, and the events are read once."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from deltalake import DeltaTable

from jobs.control import JobStore, SegmentStore, create_job, create_segment, run_job
from jobs.engine import export, load_events, load_fragments
from jobs.planner import build_plan
from jobs.spec import JobStatus

from ..reference import GOLD_BUYERS, gold_buyers, read_rows

pytestmark = pytest.mark.spark

ORG, SANDBOX = "demo@Org", "prod"


@pytest.fixture
def config(evaluating):
    return evaluating


def define(config, value: str) -> str:
    body = {"name": "gold buyers", "expression": {"type": "PQL", "format": "pql/text", "value": value},
            "schema": {"name": "_xdm.context.profile"}}
    return create_segment(SegmentStore(config.segment_table_path), config, body, ORG, SANDBOX).id


def job(segment: str, statuses=("realized", "existing"), events: bool = False) -> dict:
    body = {"fields": "loyalty.tier", "evaluationInfo": {"segmentation": True},
            "filter": {"segments": [{"segmentId": segment, "status": list(statuses)}]},
            "destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
    if events:
        body["additionalFields"] = {"eventList": {"fields": "_id"}}
    return body


def keys(rows) -> set[tuple[str, str]]:
    return {next((ns, i["id"]) for ns, items in r["identityMap"] for i in items if i["primary"]) for r in rows}


def run(config, spark, body):
    store = JobStore(config.job_table_path)
    return run_job(store, config, create_job(store, config, body, ORG, SANDBOX).id, spark)


def memberships(config):
    return read_rows(config.resolve(config.profile_dataset(config.segmentation_dataset).path))


def test_evaluation_exports_the_reference_members_and_writes_them_back(spark, config):
    segment = define(config, GOLD_BUYERS)
    expected = gold_buyers(config)
    first = run(config, spark, job(segment))
    assert first.status is JobStatus.SUCCEEDED, first.errors
    out = read_rows(config.resolve(config.destination_datasets[0].path))
    assert expected and keys(out) == expected
    assert first.metrics.segmented_profile_counter == {segment: len(expected)}
    assert first.metrics.segmented_profile_by_status_counter == {
        segment: {"realized": len(expected), "existing": 0, "exited": 0}}
    now = datetime.fromtimestamp(first.evaluation_time / 1000, UTC)
    assert all(dict(r["segmentMembership"])["ups"] == [(segment, {"status": "realized",
                                                                  "lastQualificationTime": now})]
               for r in out)
    written = memberships(config)
    assert keys(written) == expected and all(r["_ingestTime"].replace(tzinfo=UTC) == now for r in written)

    # The next evaluation sees the write-back: the same profiles are existing, qualified at the first `now`.
    second = run(config, spark, job(segment, statuses=["existing"]))
    assert second.status is JobStatus.SUCCEEDED, second.errors
    assert second.metrics.segmented_profile_by_status_counter[segment] == {
        "realized": 0, "existing": len(expected), "exited": 0}
    batch = [r for r in read_rows(config.resolve(config.destination_datasets[0].path))
             if r["_batchId"] == second.destination.batch_id]
    assert keys(batch) == expected
    assert {m["lastQualificationTime"] for r in batch for _, inner in r["segmentMembership"] for _, m in inner} \
        == {now}
    assert len(memberships(config)) == 2 * len(expected)  # realized → existing changed every membership


def test_a_failure_between_the_two_commits_is_finished_by_the_next_run_which_writes_nothing_twice(
        spark, config, monkeypatch):
    segment = define(config, GOLD_BUYERS)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, job(segment), ORG, SANDBOX)
    real = export.write_memberships

    def crash(*args, **kwargs):
        raise RuntimeError("the runner died between the commits")

    monkeypatch.setattr(export, "write_memberships", crash)
    unfinished = run_job(store, config, record.id, spark)
    # Its batches are committed, its memberships are not: never FAILED half-applied, but NEW to be finished.
    assert unfinished.status is JobStatus.NEW and unfinished.retries == 1
    assert "died between the commits" in unfinished.errors[-1].msg
    monkeypatch.setattr(export, "write_memberships", real)
    again = run_job(store, config, record.id, spark)
    assert again.status is JobStatus.SUCCEEDED, again.errors
    assert again.evaluation_time == unfinished.evaluation_time  # the retry evaluates at the same `now`
    expected = gold_buyers(config)
    out = read_rows(config.resolve(config.destination_datasets[0].path))
    assert keys(out) == expected and len(out) == len(expected)
    assert keys(memberships(config)) == expected and len(memberships(config)) == len(expected)
    assert again.metrics.segmented_profile_counter == {segment: len(expected)}
    history = DeltaTable(config.resolve(config.profile_dataset(config.segmentation_dataset).path)).history()
    assert [json.loads(h["userMetadata"])["jobId"] for h in history] == [record.id]

    # A rerun after both commits writes neither again, and still reports the evaluation.
    store.replace(again.updated(status=JobStatus.NEW, update_time=again.update_time + 1),
                  expected=[JobStatus.SUCCEEDED])
    once_more = run_job(store, config, record.id, spark)
    assert once_more.status is JobStatus.SUCCEEDED, once_more.errors
    assert len(read_rows(config.resolve(config.destination_datasets[0].path))) == len(expected)
    assert len(memberships(config)) == len(expected)
    assert once_more.metrics.segmented_profile_counter == {segment: len(expected)}


def test_events_are_read_once_for_both_counts_and_the_events_column(spark, config):
    segment = define(config, GOLD_BUYERS)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, job(segment, events=True), ORG, SANDBOX)
    record = record.evaluated_at(1_800_000_000_000)
    plan = build_plan(record, config, "d")
    assert plan.events is not None
    rows = export.export_rows(export.profiles_of(load_fragments(spark, plan), plan, load_events(spark, plan.events)),
                              plan)
    executed = rows._jdf.queryExecution().executedPlan().toString()
    event_path = config.resolve(config.event_datasets[0].path)
    scans = [line for line in executed.splitlines() if "Scan" in line and event_path in line]
    assert len(scans) == 1, executed
