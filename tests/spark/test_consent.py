"""Consent at export: a destination's consent policy on the merged profile under both merge policies and
under pdg, a job's stricter policy, what a job may not loosen, and the counters and record."""

from __future__ import annotations

import pytest

from jobs.control import JobStore, create_job, run_job
from jobs.spec import JobRecord, JobStatus, RequestRejected, load_config
from sample_lake import LakeSpec, generate, sample_config

from ..reference import read_rows
from .helpers import member, ts

pytestmark = pytest.mark.spark

FRAGMENT = (
    "identityMap map<string, array<struct<id: string, primary: boolean>>>, _ingestTime timestamp, "
    "segmentMembership map<string, map<string, struct<status: string, lastQualificationTime: timestamp>>>, "
    "personalEmail struct<address: string>, consents struct<marketing: struct<email: struct<val: string>>>"
)


def fragment(key: str, day: int, consent: str | None, segments=("seg-a",), email: str | None = None):
    identities = {"ECID": [{"id": key, "primary": True}]}
    if email:
        identities["Email"] = [{"id": email, "primary": False}]
    memberships = {"ups": {s: member("realized", ts(day)) for s in segments}} if segments else None
    return (identities, ts(day), memberships, {"address": f"{key}@example.com"},
            {"marketing": {"email": {"val": consent}}} if consent else None)


CRM = [
    fragment("p1", 1, "y", ("seg-a", "seg-b")),
    fragment("p2", 1, "y", ("seg-a", "seg-b")),
    fragment("p3", 1, None, ("seg-a", "seg-b")),
    fragment("p4", 1, "dy"),
    fragment("p5", 1, "n"),
    fragment("p6a", 1, "y", email="six@example.com"),
    fragment("p7", 1, "y", segments=()),  # in no segment: neither exported nor counted as excluded
]
LOYALTY = [
    fragment("p2", 2, "n", segments=()),  # a later fragment withdraws consent
    fragment("p5", 2, "y", segments=()),  # and here one gives it
    fragment("p6b", 3, "n", email="six@example.com"),  # the same person as p6a under pdg
]

CONFIG = """
lakeRoot = "{root}"
jobTable = "jobs"
defaultOrg = "demo@Org"
defaultSandbox = "prod"

[[profileDatasets]]
id = "crm"
path = "profiles/crm"

[[profileDatasets]]
id = "loyalty"
path = "profiles/loyalty"

[[destinationDatasets]]
id = "email"
path = "out/email"
schemaName = "_xdm.context.profile"
consent = {{ field = "consents.marketing.email.val" }}

[[destinationDatasets]]
id = "sms"
path = "out/sms"
schemaName = "_xdm.context.profile"
consent = {{ field = "consents.marketing.sms.val" }}

[[mergePolicies]]
id = "latest"
version = 1
attributeMerge = "timestampOrdered"
default = true

[[mergePolicies]]
id = "crm-first"
version = 1
attributeMerge = "dataSetPrecedence"
order = ["crm", "loyalty"]

[[mergePolicies]]
id = "graph"
version = 1
attributeMerge = "timestampOrdered"
identityGraph = "pdg"
"""


@pytest.fixture(scope="module")
def consent_lake(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("consent-lake")
    for name, rows in (("crm", CRM), ("loyalty", LOYALTY)):
        spark.createDataFrame(rows, FRAGMENT).write.format("delta").save(str(root / "profiles" / name))
    conf = root / "lake.toml"
    conf.write_text(CONFIG.format(root=root))
    return load_config(conf)


def export(spark, config, policy="latest", **changes) -> tuple[JobRecord, list[dict]]:
    body = {"fields": "personalEmail.address", "mergePolicy": {"id": policy, "version": 1},
            "filter": {"segments": [{"segmentId": "seg-a"}, {"segmentId": "seg-b"}]},
            "destination": {"datasetId": "email"}, "schema": {"name": "_xdm.context.profile"}, **changes}
    store = JobStore(config.job_table_path)
    record = run_job(store, config, create_job(store, config, body, "demo@Org", "prod").id, spark)
    assert record.status is JobStatus.SUCCEEDED, record.errors
    batches = "', '".join(record.export_destination.batch_ids())
    return record, read_rows(config.resolve("out/email"), f"_batchId IN ('{batches}')")


def ecids(rows) -> set[str]:
    return {i["id"] for row in rows for ns, items in row["identityMap"] for i in items if ns == "ECID"}


@pytest.mark.parametrize(("policy", "exported"), [
    ("latest", {"p1", "p4", "p5", "p6a"}),  # p2 withdrew later, p5 gave it later, p6b said no
    ("crm-first", {"p1", "p2", "p4", "p6a"}),  # crm's value wins, whenever loyalty's came
    ("graph", {"p1", "p4", "p5"}),  # p6a and p6b are one person, whose latest word is no
])
def test_the_destination_policy_applies_to_the_merged_profile(spark, consent_lake, policy, exported):
    record, rows = export(spark, consent_lake, policy)
    assert ecids(rows) == exported
    assert record.metrics.total_exported_profile_counter == len(rows)
    assert record.metrics.consent_excluded_profile_counter == 3  # p7 is in no segment: not counted
    assert record.metrics.consent_excluded_profile_by_segment_counter is None
    assert [c.to_dict() for c in record.consent_policies or ()] == [
        {"source": "destination", "field": "consents.marketing.email.val", "allowedValues": ["y", "dy"],
         "missing": "exclude"}]
    assert "consents" not in rows[0]  # read to decide, not exported


def test_a_job_narrows_the_policy_and_counts_per_segment(spark, consent_lake):
    narrower = {"field": "consents.marketing.email.val", "allowedValues": ["y"]}
    record, rows = export(spark, consent_lake, consent=narrower,
                          destination={"datasetId": "email", "segmentPerBatch": True})
    by_batch = {b.segment_id: b.batch_id for b in record.export_destination.batches or ()}
    assert ecids(r for r in rows if r["_batchId"] == by_batch["seg-a"]) == {"p1", "p5", "p6a"}
    assert ecids(r for r in rows if r["_batchId"] == by_batch["seg-b"]) == {"p1"}
    assert record.metrics.consent_excluded_profile_counter == 4  # p4's "dy" too
    assert record.metrics.consent_excluded_profile_by_segment_counter == {"ups": {"seg-a": 4, "seg-b": 2}}
    assert [c.source for c in record.consent_policies or ()] == ["destination", "job"]
    own = record.definition().consent
    assert own is not None and own.allowed_values == ["y"]


def test_a_rerun_of_a_committed_job_counts_the_same(spark, consent_lake):
    # The crash between commit and record: the rerun finds the commit and recounts from the inputs.
    first, _ = export(spark, consent_lake, destination={"datasetId": "email", "segmentPerBatch": True})
    store = JobStore(consent_lake.job_table_path)
    store.replace(first.updated(status=JobStatus.NEW, metrics=first.metrics.updated(
        consent_excluded_profile_counter=None, consent_excluded_profile_by_segment_counter=None)),
        expected=[JobStatus.SUCCEEDED])
    again = run_job(store, consent_lake, first.id, spark)
    assert again.status is JobStatus.SUCCEEDED, again.errors
    assert again.metrics.consent_excluded_profile_counter == first.metrics.consent_excluded_profile_counter == 3
    assert (again.metrics.consent_excluded_profile_by_segment_counter
            == first.metrics.consent_excluded_profile_by_segment_counter == {"ups": {"seg-a": 3, "seg-b": 2}})


def test_a_job_cannot_loosen_the_destination_policy(consent_lake):
    store = JobStore(consent_lake.job_table_path)
    body = {"destination": {"datasetId": "email"}, "schema": {"name": "_xdm.context.profile"},
            "consent": {"field": "consents.marketing.email.val", "allowedValues": ["y", "n"], "missing": "include"}}
    with pytest.raises(RequestRejected) as caught:
        create_job(store, consent_lake, body, "demo@Org", "prod")
    assert {p.path for p in caught.value.problems} == {"consent.allowedValues", "consent.missing"}
    assert "'n'" in caught.value.problems[0].message

    body = {"destination": {"datasetId": "sms"}, "schema": {"name": "_xdm.context.profile"}}
    with pytest.raises(RequestRejected) as caught:
        create_job(store, consent_lake, body, "demo@Org", "prod")
    [problem] = caught.value.problems
    assert problem.path == "destination.datasetId"
    assert "consents.marketing.sms.val" in problem.message and "does not have" in problem.message


def test_consent_on_a_generated_lake_matches_a_reference(spark, tmp_path):
    conf = tmp_path / "lake.toml"
    conf.write_text(sample_config(tmp_path).replace(
        'schemaName = "_xdm.context.profile"',
        'schemaName = "_xdm.context.profile"\nconsent = { field = "consents.marketing.email.val" }'))
    config = load_config(conf)
    generate(spark, config, LakeSpec(profiles=300, segments=2, fragments_per_profile=2, consents=True))
    store = JobStore(config.job_table_path)
    body = {"fields": "person.name.firstName", "destination": {"datasetId": "audience"},
            "schema": {"name": "_xdm.context.profile"}}
    record = run_job(store, config, create_job(store, config, body, "demo@Org", "prod").id, spark)
    assert record.status is JobStatus.SUCCEEDED, record.errors

    fragments = [config.resolve(d.path) for d in config.profile_datasets]
    keys = {_primary(r) for path in fragments for r in read_rows(path)}
    consent = latest_consent(fragments)
    allowed = {key for key in keys if consent.get(key) in ("y", "dy")}
    rows = read_rows(config.resolve("exports/audience"))
    assert {_primary(r) for r in rows} == allowed
    assert 0 < len(allowed) < len(keys)
    assert record.metrics.consent_excluded_profile_counter == len(keys) - len(allowed)


def _primary(row) -> tuple[str, str]:
    return next((ns, i["id"]) for ns, items in row["identityMap"] for i in items if i["primary"])


def latest_consent(paths: list[str]) -> dict[tuple[str, str], str]:
    """Per profile key, its latest non-null consents.marketing.email.val (timestampOrdered)."""
    latest: dict[tuple[str, str], tuple] = {}
    for path in paths:
        for row in read_rows(path):
            value = (((row.get("consents") or {}).get("marketing") or {}).get("email") or {}).get("val")
            key = _primary(row)
            if value is not None and (key not in latest or latest[key][0] < row["_ingestTime"]):
                latest[key] = (row["_ingestTime"], value)
    return {key: value for key, (_, value) in latest.items()}
