"""Caps on what one request or one tenant may ask for ([limits]), each refused naming its field (no Spark)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from jobs.control.jobs import JobStore, create_job
from jobs.control.schedules import ScheduleStore, create_schedule
from jobs.control.segments import SegmentStore, create_segment
from jobs.spec import RequestRejected, load_config, pql
from sample_lake import empty_table, sample_config

JOB = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
LIMITS = """
[limits]
segmentsPerJob = 3
fieldsPerJob = 2
pqlLength = 200
pqlNesting = 4
definitionsPerTenant = 2
schedulesPerTenant = 2
activeJobsPerTenant = 2
"""


@pytest.fixture
def config(tmp_path):
    empty_table(tmp_path / "profiles/profiles_0", loyalty=pa.struct([("tier", pa.string()), ("points", pa.int64())]))
    empty_table(tmp_path / "profiles/profiles_1", person=pa.struct([("name", pa.string())]))
    empty_table(tmp_path / "events/events_0", _id=pa.string())
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path) + LIMITS)
    return load_config(conf)


def problems(call) -> dict[str, str]:
    with pytest.raises(RequestRejected) as caught:
        call()
    return {p.path: p.message for p in caught.value.problems}


def segment(value: str) -> dict:
    return {"name": "s", "expression": {"type": "PQL", "format": "pql/text", "value": value},
            "schema": {"name": "_xdm.context.profile"}}


def test_segments_and_fields_per_job(config):
    store = JobStore(config.job_table_path)
    body = dict(JOB, fields="loyalty.tier,loyalty.points,person.name",
                filter={"segments": [{"segmentId": f"s{i}"} for i in range(4)]})
    found = problems(lambda: create_job(store, config, body, "demo@Org", "prod"))
    assert found["filter.segments"] == "lists 4 segments; a job takes at most 3 (limits.segmentsPerJob)"
    assert found["fields"] == "lists 3 fields; a job takes at most 2 (limits.fieldsPerJob)"


def test_active_jobs_per_tenant(config):
    store = JobStore(config.job_table_path)
    for _ in range(2):
        create_job(store, config, JOB, "demo@Org", "prod")
    assert "limits.activeJobsPerTenant" in problems(lambda: create_job(store, config, JOB, "demo@Org", "prod"))["$"]


def test_schedules_per_tenant(config):
    schedules = ScheduleStore(config.schedule_table_path)
    for _ in range(2):
        create_schedule(schedules, config, {"cron": "@daily", "job": JOB}, "demo@Org", "prod")
    found = problems(lambda: create_schedule(schedules, config, {"cron": "@daily", "job": JOB}, "demo@Org", "prod"))
    assert "limits.schedulesPerTenant" in found["$"]


def test_definitions_per_tenant_and_the_size_of_an_expression(config):
    store = SegmentStore(config.segment_table_path)
    too_long = " or ".join(['loyalty.tier = "gold"'] * 10)
    assert "takes at most 200" in problems(lambda: create_segment(store, config, segment(too_long), "demo@Org",
                                                                  "prod"))["expression.value"]
    deep = "not(" * 5 + 'loyalty.tier = "gold"' + ")" * 5
    assert "nested more than 4 levels deep" in problems(
        lambda: create_segment(store, config, segment(deep), "demo@Org", "prod"))["expression.value"]
    for _ in range(2):
        create_segment(store, config, segment("loyalty.points > 1"), "demo@Org", "prod")
    found = problems(lambda: create_segment(store, config, segment("loyalty.points > 2"), "demo@Org", "prod"))
    assert "limits.definitionsPerTenant" in found["$"]


def test_a_long_chain_parses_and_deep_nesting_is_a_pql_error_not_a_crash():
    chain = pql.parse(" and ".join([f"points > {i}" for i in range(3000)]))
    assert isinstance(chain, pql.And) and len(chain.items) == 3000
    with pytest.raises(pql.PqlError, match="nested too deeply"):
        pql.parse("not(" * 5000 + "vip" + ")" * 5000)
