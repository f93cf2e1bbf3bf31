"""Tenancy of the data: a tenant's jobs, schedules and segments see only its own datasets (no Spark)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from jobs.control.jobs import JobStore, create_job
from jobs.control.schedules import ScheduleStore, create_schedule
from jobs.control.segments import SegmentStore, create_segment
from jobs.planner import build_plan
from jobs.spec import ConfigError, RequestRejected, load_config
from sample_lake import empty_table, sample_config

JOB = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
ACME = """
[[profileDatasets]]
id = "acme_profiles"
path = "acme/profiles"
org = "acme@Org"
sandboxes = ["prod", "dev"]

[[profileDatasets]]
id = "acme_memberships"
path = "acme/memberships"
org = "acme@Org"
sandboxes = ["prod"]
segmentation = true

[[eventDatasets]]
id = "acme_events"
path = "acme/events"
org = "acme@Org"
sandboxes = ["prod"]

[[destinationDatasets]]
id = "acme_audience"
path = "acme/audience"
schemaName = "_xdm.context.profile"
org = "acme@Org"
sandboxes = ["prod"]
"""


@pytest.fixture
def config(tmp_path):
    """The sample lake of demo@Org/prod, and acme@Org's own tables beside it."""
    for path in ("profiles/profiles_0", "profiles/profiles_1", "acme/profiles"):
        empty_table(tmp_path / path, loyalty=pa.struct([("tier", pa.string())]))
    for path in ("events/events_0", "acme/events"):
        empty_table(tmp_path / path, _id=pa.string(), eventType=pa.string())
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path, segmentation=str(tmp_path / "memberships")) + ACME)
    return load_config(conf)


def rejected(call) -> dict[str, str]:
    with pytest.raises(RequestRejected) as caught:
        call()
    return {p.path: p.message for p in caught.value.problems}


def test_another_tenants_destination_is_refused_as_one_that_does_not_exist(config):
    store = JobStore(config.job_table_path)
    none = "none in this org and sandbox"
    tenants = (("acme@Org", "prod", "acme_audience"), ("acme@Org", "dev", none), ("demo@Org", "dev", none))
    for org, sandbox, own in tenants:
        problems = rejected(lambda o=org, s=sandbox: create_job(store, config, JOB, o, s))
        suggested = f"; did you mean {own!r}?" if own != none else ""  # only a dataset of its own
        assert problems["destination.datasetId"] == f"unknown dataset 'audience'; declared: {own}{suggested}"
    schedules = ScheduleStore(config.schedule_table_path)
    problems = rejected(lambda: create_schedule(schedules, config, {"cron": "@daily", "job": JOB}, "acme@Org", "prod"))
    assert "job.destination.datasetId" in problems
    assert store.list("acme@Org", "prod") == [] and schedules.list() == []


def test_a_tenants_job_reads_and_writes_only_its_own_datasets(config):
    store = JobStore(config.job_table_path)
    acme = dict(JOB, destination={"datasetId": "acme_audience"}, additionalFields={"eventList": {"fields": "_id"}})
    record = create_job(store, config, acme, "acme@Org", "prod")
    plan = build_plan(record, config, "d")
    assert [s.dataset_id for s in plan.sources] == ["acme_profiles", "acme_memberships"]
    assert plan.events is not None and [s.dataset_id for s in plan.events.sources] == ["acme_events"]
    assert plan.destination_path == config.resolve("acme/audience")

    demo = build_plan(create_job(store, config, dict(JOB, fields="loyalty.tier"), "demo@Org", "prod"), config, "d")
    assert [s.dataset_id for s in demo.sources] == ["profiles_0", "profiles_1", "segment_memberships"]
    # acme@Org's dev sandbox has its profiles, but neither its events nor a destination.
    assert "destination.datasetId" in rejected(lambda: create_job(store, config, acme, "acme@Org", "dev"))
    # A tenant with no data at all is told so, not given a job that reads nothing.
    nothing = rejected(lambda: create_job(store, config, JOB, "nobody@Org", "prod"))
    assert nothing["$"] == "this org and sandbox have no profile datasets to export from"


def test_a_tenants_segments_are_checked_against_its_own_profiles_and_written_back_to_its_own_dataset(config):
    segments = SegmentStore(config.segment_table_path)
    body = {"name": "gold", "expression": {"type": "PQL", "format": "pql/text", "value": 'loyalty.tier = "gold"'},
            "schema": {"name": "_xdm.context.profile"}}
    gold = create_segment(segments, config, body, "acme@Org", "prod").id
    job = dict(JOB, destination={"datasetId": "acme_audience"}, filter={"segments": [{"segmentId": gold}]},
               evaluationInfo={"segmentation": True})
    record = create_job(JobStore(config.job_table_path), config, job, "acme@Org", "prod")
    record = record.evaluated_at(1_700_000_000_000)
    plan = build_plan(record, config, "d")
    assert plan.evaluation is not None and plan.evaluation.writeback_path == config.resolve("acme/memberships")
    # acme@Org's dev sandbox has no segmentation dataset: it cannot evaluate.
    dev = create_segment(segments, config, body, "acme@Org", "dev").id
    dev_job = dict(job, destination={"datasetId": "acme_audience"}, filter={"segments": [{"segmentId": dev}]})
    assert "evaluationInfo.segmentation" in rejected(
        lambda: create_job(JobStore(config.job_table_path), config, dev_job, "acme@Org", "dev"))


@pytest.mark.parametrize("extra, words", [
    ('[[profileDatasets]]\nid = "two"\npath = "p/two"\nsandboxes = ["prod", "dev"]\nsegmentation = true\n',
     "must belong to one sandbox"),
    ('[[profileDatasets]]\nid = "again"\npath = "p/again"\nsegmentation = true\n',
     "has two segmentation datasets"),
])
def test_segmentation_datasets_are_one_per_sandbox(tmp_path, extra, words):
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path, segmentation=str(tmp_path / "memberships")) + "\n" + extra)
    with pytest.raises(ConfigError, match=words):
        load_config(conf)
