"""The same export job under identityGraph none and pdg, on a lake where people's identities are
spread over their fragments: pdg exports one profile per component, as a union-find reference
says, with stable keys, and counts what the cap excludes."""

from __future__ import annotations

import pytest

from jobs.control import JobStore, create_job, run_job
from jobs.spec import JobRecord, JobStatus, load_config
from sample_lake import LakeSpec, generate, sample_config

from ..reference import expected_members, read_rows, stitched_members

pytestmark = pytest.mark.spark

SEGMENTS = [("ups", "segment-01", {"realized", "existing"}), ("ups", "segment-02", {"realized", "existing"})]


@pytest.fixture(scope="module")
def linked_lake(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("linked-lake")
    conf = root / "lake.toml"
    conf.write_text(sample_config(root))
    generate(spark, load_config(conf), LakeSpec(profiles=300, segments=4, fragments_per_profile=2,
                                                events_per_profile=2, linked_share=0.4, linked_events=0.3))
    return root


def deployment(root, tmp_path, name: str, cap: int = 50):
    conf = tmp_path / f"{name}.toml"
    conf.write_text(f"maxIdentitiesPerGraph = {cap}\n" + sample_config(
        root, job_table=str(tmp_path / f"{name}-jobs"), destination=str(tmp_path / f"{name}-out")))
    return load_config(conf)


def export(spark, config, policy: str, **changes) -> tuple[JobRecord, list[dict]]:
    body = {"fields": "personalEmail.address", "mergePolicy": {"id": policy, "version": 1},
            "filter": {"segments": [{"segmentId": s} for _, s, _ in SEGMENTS]},
            "destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}, **changes}
    store = JobStore(config.job_table_path)
    record = run_job(store, config, create_job(store, config, body, "demo@Org", "prod").id, spark)
    assert record.status is JobStatus.SUCCEEDED, record.errors
    rows = read_rows(config.resolve(config.destination_datasets[0].path),
                     f"_batchId = '{record.export_destination.batch_id}'")
    return record, rows


def smallest(row) -> tuple[str, str]:
    return min((ns, i["id"]) for ns, items in row["identityMap"] for i in items)


def test_pdg_exports_components_where_none_exports_primary_identities(spark, linked_lake, tmp_path):
    config = deployment(linked_lake, tmp_path, "both")
    fragments = [config.resolve(d.path) for d in config.profile_datasets]
    everything = fragments + [config.resolve(d.path) for d in config.event_datasets]

    _, none_rows = export(spark, config, "timestampOrdered-none-mp")
    primaries = {next((ns, i["id"]) for ns, items in r["identityMap"] for i in items if i["primary"])
                 for r in none_rows}
    assert primaries == expected_members(fragments, SEGMENTS)

    pdg, pdg_rows = export(spark, config, "timestampOrdered-pdg-mp")
    expected = stitched_members(fragments, everything, SEGMENTS, 50)
    assert {smallest(r) for r in pdg_rows} == expected
    assert len(pdg_rows) == len(expected) < len(none_rows)  # linked people are one profile each
    assert pdg.metrics.total_exported_profile_counter == len(expected)
    assert pdg.metrics.excluded_graph_counter == 0
    by_ns: dict[str, int] = {}
    for row in pdg_rows:
        for ns, _ in row["identityMap"]:
            by_ns[ns] = by_ns.get(ns, 0) + 1
    assert pdg.metrics.exported_profile_by_namespace_counter == dict(sorted(by_ns.items()))

    # Reruns give the same keys.
    _, again = export(spark, config, "timestampOrdered-pdg-mp")
    assert {smallest(r) for r in again} == expected


def test_components_over_the_cap_are_excluded_and_counted(spark, linked_lake, tmp_path):
    config = deployment(linked_lake, tmp_path, "capped", cap=2)
    fragments = [config.resolve(d.path) for d in config.profile_datasets]
    everything = fragments + [config.resolve(d.path) for d in config.event_datasets]
    record, rows = export(spark, config, "timestampOrdered-pdg-mp")
    assert {smallest(r) for r in rows} == stitched_members(fragments, everything, SEGMENTS, 2)
    assert record.metrics.excluded_graph_counter is not None
    assert record.metrics.excluded_graph_counter > 0
    examples = record.metrics.excluded_graphs
    assert examples is not None
    assert 0 < len(examples) <= 10 and all(e.size > 2 for e in examples)
    assert all(e.id.startswith("sha256:") and len(e.id) == 23 for e in examples)  # exampleIds = "hashed"
    assert [e.size for e in examples] == sorted((e.size for e in examples), reverse=True)


def test_events_and_empty_profiles_under_pdg(spark, linked_lake, tmp_path):
    config = deployment(linked_lake, tmp_path, "events")
    _, rows = export(spark, config, "timestampOrdered-pdg-mp",
                     additionalFields={"eventList": {"fields": "_id"}})
    # Each profile gets the events of every identity of its component.
    events_by_identity: dict[tuple[str, str], set[str]] = {}
    for event in read_rows(config.resolve(config.event_datasets[0].path)):
        for ns, items in event["identityMap"]:
            for i in items:
                events_by_identity.setdefault((ns, i["id"]), set()).add(event["_id"])
    for row in rows:
        mine = set().union(*[events_by_identity.get((ns, i["id"]), set()) for ns, items in row["identityMap"]
                             for i in items])
        assert {e["_id"] for e in row["events"]} == mine
