"""Privacy requests run end to end on a lake of their own: an access document against a plain-Python
reference, an erasure from every dataset (read back with delta-rs), its receipts, a retry that deletes
nothing twice, the suppression list keeping a late fragment out of later exports, expandIds, vacuum."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from deltalake import DeltaTable

from jobs.control import JobStore, PrivacyStore, create_job, create_privacy_jobs, run_job, run_privacy_jobs
from jobs.engine import delete_marker
from jobs.spec import JobStatus, PrivacyStatus, RequestRejected, load_config
from sample_lake import LakeSpec, generate, sample_config

from ..reference import components, erasure_commits, holding, read_rows

pytestmark = pytest.mark.spark

EXPORT = {"fields": "personalEmail.address", "destination": {"datasetId": "audience"},
          "schema": {"name": "_xdm.context.profile"}}


@pytest.fixture
def privacy_lake(spark, tmp_path):
    conf = tmp_path / "lake.toml"
    conf.write_text("privacyRetentionHours = 0\n" + sample_config(tmp_path))
    config = load_config(conf)
    generate(spark, config, LakeSpec(profiles=40, segments=2, fragments_per_profile=2, events_per_profile=2,
                                     linked_share=0.5))
    return config


def tables(config) -> dict[str, str]:
    """The config's datasets that have a table (the destination once an export wrote it)."""
    paths = {d.id: config.resolve(d.path) for d in
             [*config.profile_datasets, *config.event_datasets, *config.destination_datasets]}
    return {name: path for name, path in paths.items() if DeltaTable.is_deltatable(path)}


def request(user_ids, actions=("access", "delete"), expand=False, org="demo@Org"):
    return {"companyContexts": [{"namespace": "imsOrgID", "value": org}], "regulation": "gdpr", "expandIds": expand,
            "users": [{"key": "person-1", "action": list(actions), "userIDs": user_ids}]}


def run(spark, config):
    return run_privacy_jobs(PrivacyStore(config.privacy_table_path), config, lambda: spark, "test-runner")


def export(spark, config):
    store = JobStore(config.job_table_path)
    record = run_job(store, config, create_job(store, config, EXPORT, "demo@Org", "prod").id, spark)
    assert record.status is JobStatus.SUCCEEDED, record.errors
    return record


def test_access_then_erasure_everywhere_with_receipts_and_no_comeback(spark, privacy_lake):
    config = privacy_lake
    export(spark, config)
    first = read_rows(config.resolve("profiles/profiles_0"))[0]
    ns, ecid = next((ns, i["id"]) for ns, items in first["identityMap"] for i in items if i["primary"])
    person = {(ns.lower(), ecid)}
    before = {name: holding(path, person) for name, path in tables(config).items()}
    assert before["profiles_0"] and before["audience"]  # the person is in the lake and was exported

    answer = create_privacy_jobs(PrivacyStore(config.privacy_table_path),
                                 request([{"namespace": ns.lower(), "value": ecid}]), "demo@Org", "prod")
    assert answer["totalRecords"] == 1 and answer["jobs"][0]["customer"]["user"]["key"] == "person-1"
    [job] = run(spark, config)
    assert job.status is PrivacyStatus.COMPLETE, job.errors

    # Access: every row of the person, as a plain-Python read found them before the erasure.
    assert job.access_document is not None
    document = json.loads(Path(job.access_document).read_text())
    for section, names in (("profileFragments", ["profiles_0", "profiles_1"]), ("events", ["events_0"]),
                           ("destinations", ["audience"])):
        for name in names:
            assert len(document[section][name]) == len(before[name]), (section, name)
    assert sorted(r["_ingestTime"] for r in document["profileFragments"]["profiles_0"]) == sorted(
        r["_ingestTime"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + ".000Z" for r in before["profiles_0"])

    # Erasure: gone from every table, as delta-rs reads them; one receipt per dataset.
    for name, path in tables(config).items():
        assert holding(path, person) == [], name
        receipt = job.receipt(name, "event" if name.startswith("events") else
                              "destination" if name == "audience" else "profile")
        assert receipt is not None and receipt.rows_affected == len(before[name]), name
        if before[name]:
            [delete] = [c for c in DeltaTable(path).history() if c.get("version") == receipt.version]
            assert delete["operation"] == "MERGE" and delete["userMetadata"] == delete_marker(
                job.batch_id or "", [job.job_id])
            # The commit that erased them does not name them (a DELETE's would, in its condition).
            assert ecid not in (Path(path) / "_delta_log" / f"{receipt.version:020d}.json").read_text(), name
    # Vacuumed at once (privacyRetentionHours = 0): only the current version's files are left.
    finished = PrivacyStore(config.privacy_table_path).get(job.job_id)
    assert finished.vacuumed is True
    for path in tables(config).values():
        on_disk = {p.name for p in Path(path).glob("*.parquet")}
        assert on_disk == {Path(f).name for f in DeltaTable(path).file_uris()}, path

    # A late fragment of the erased person (ingested before the request) is never exported again.
    late = spark.createDataFrame([({ns: [{"id": ecid, "primary": True}]}, datetime(2024, 3, 1, tzinfo=UTC))],
                                 "identityMap map<string, array<struct<id: string, primary: boolean>>>, "
                                 "_ingestTime timestamp")
    late.write.format("delta").mode("append").option("mergeSchema", "true").save(config.resolve("profiles/profiles_1"))
    again = export(spark, config)
    assert again.metrics.total_exported_profile_counter
    assert holding(config.resolve("exports/audience"), person) == []


def test_a_retry_repeats_only_what_has_no_receipt_and_deletes_nothing_twice(spark, privacy_lake):
    config = privacy_lake
    export(spark, config)
    row = read_rows(config.resolve("exports/audience"))[0]
    ns, ecid = next((ns, i["id"]) for ns, items in row["identityMap"] for i in items if i["primary"])
    store = PrivacyStore(config.privacy_table_path)
    create_privacy_jobs(store, request([{"namespace": ns, "value": ecid}], actions=["delete"]), "demo@Org", "prod")
    [done] = run(spark, config)
    assert done.status is PrivacyStatus.COMPLETE, done.errors
    # The crash: the destination's DELETE committed, but the runner died before its receipt.
    crashed = done.updated(status=PrivacyStatus.PROCESSING, vacuum_after=None, vacuumed=None,
                           receipts=[r for r in done.receipts if r.kind != "destination"])
    deletes = {name: erasure_commits(path) for name, path in tables(config).items()}
    assert deletes["audience"] == [json.loads(delete_marker(done.batch_id or "", [done.job_id]))]
    store._update({"status": "'processing'", "runner": "NULL", "vacuumAfter": "NULL",
                   "record": f"'{crashed.to_json()}'"}, f"id = '{done.job_id}'")
    [retried] = run(spark, config)
    assert retried.status is PrivacyStatus.COMPLETE and retried.attempts == 2
    again, first = retried.receipt("audience", "destination"), done.receipt("audience", "destination")
    assert again is not None and first is not None and first.rows_affected > 0
    assert (again.rows_affected, again.version) == (first.rows_affected, first.version)
    assert {name: erasure_commits(path) for name, path in tables(config).items()} == deletes  # no DELETE again


def test_expand_ids_erases_the_whole_identity_component(spark, privacy_lake):
    config = privacy_lake
    paths = [config.resolve(d.path) for d in [*config.profile_datasets, *config.event_datasets]]
    graph = components(paths)
    by_root: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for identity, root in graph.items():
        by_root.setdefault(root, set()).add(identity)
    linked = max(by_root.values(), key=len)
    assert len(linked) >= 3
    start = min(linked)
    create_privacy_jobs(PrivacyStore(config.privacy_table_path),
                        request([{"namespace": start[0], "value": start[1]}], actions=["delete"], expand=True),
                        "demo@Org", "prod")
    [job] = run(spark, config)
    assert job.status is PrivacyStatus.COMPLETE, job.errors
    assert {(i.namespace, i.value) for i in job.identities or ()} == linked
    everyone = {(ns.lower(), i) for ns, i in linked}
    for name, path in tables(config).items():
        assert holding(path, everyone) == [], name


def test_a_request_for_another_org_is_refused_and_stores_nothing(privacy_lake):
    store = PrivacyStore(privacy_lake.privacy_table_path)
    with pytest.raises(RequestRejected) as caught:
        create_privacy_jobs(store, request([{"namespace": "ECID", "value": "x"}], org="other@Org"), "demo@Org", "prod")
    assert [p.path for p in caught.value.problems] == ["companyContexts"]
    assert store.page("demo@Org", "prod", 10) == []


def test_an_erasure_by_a_secondary_identity_takes_every_fragment_of_the_profile(spark, tmp_path):
    schema = "identityMap map<string, array<struct<id: string, primary: boolean>>>, _ingestTime timestamp"
    fragments = [({"ECID": [{"id": "k1", "primary": True}], "Email": [{"id": "ada@example.com", "primary": False}]},
                  datetime(2024, 1, 1, tzinfo=UTC)),
                 ({"ECID": [{"id": "k1", "primary": True}]}, datetime(2024, 1, 2, tzinfo=UTC)),  # no email here
                 ({"ECID": [{"id": "k2", "primary": True}]}, datetime(2024, 1, 3, tzinfo=UTC))]
    spark.createDataFrame(fragments, schema).write.format("delta").save(str(tmp_path / "profiles" / "profiles_0"))
    spark.createDataFrame(fragments[2:], schema).write.format("delta").save(str(tmp_path / "profiles" / "profiles_1"))
    conf = tmp_path / "lake.toml"
    conf.write_text(sample_config(tmp_path, event_datasets=0))
    config = load_config(conf)
    create_privacy_jobs(PrivacyStore(config.privacy_table_path),
                        request([{"namespace": "email", "value": "ada@example.com"}], actions=["delete"]),
                        "demo@Org", "prod")
    [job] = run(spark, config)
    assert job.status is PrivacyStatus.COMPLETE, job.errors
    assert {(i.namespace, i.value) for i in job.identities or ()} == {("email", "ada@example.com"), ("ECID", "k1")}
    receipt = job.receipt("profiles_0", "profile")
    assert receipt is not None and receipt.rows_affected == 2
    left = read_rows(config.resolve("profiles/profiles_0"))
    assert [r["identityMap"] for r in left] == [[("ECID", [{"id": "k2", "primary": True}])]]


def test_a_batch_of_people_takes_one_delete_per_dataset_with_each_persons_receipts(spark, privacy_lake):
    config = privacy_lake
    export(spark, config)
    paths = [config.resolve(d.path) for d in [*config.profile_datasets, *config.event_datasets]]
    graph = components(paths)
    members: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for identity, root in graph.items():
        members.setdefault(root, set()).add(identity)
    linked = max(members.values(), key=len)  # erased with expandIds
    keys: dict[str, tuple[str, str]] = {}  # one profile key from each of three other components
    for row in read_rows(config.resolve("profiles/profiles_0")):
        key = next((ns, i["id"]) for ns, items in row["identityMap"] for i in items if i["primary"])
        if key not in linked and graph.get(key, key) not in {graph.get(k, k) for k in keys.values()} and len(keys) < 3:
            keys["abc"[len(keys)]] = key
    before = {name: read_rows(path) for name, path in tables(config).items()}
    store = PrivacyStore(config.privacy_table_path)

    def user(name, actions):
        ns, value = keys[name]
        return {"key": name, "action": actions, "userIDs": [{"namespace": ns, "value": value}]}

    first = create_privacy_jobs(store, {**request([]), "users": [user("a", ["delete"]), user("b", ["access", "delete"]),
                                                                 user("c", ["access"])]}, "demo@Org", "prod")
    start = min(linked)
    second = create_privacy_jobs(store, request([{"namespace": start[0], "value": start[1]}], actions=["delete"],
                                                expand=True), "demo@Org", "prod")
    done = {j.user.key: j for j in run(spark, config)}
    assert sorted(done) == ["a", "b", "c", "person-1"]
    assert {j.job_id for j in done.values()} == {j["jobId"] for j in first["jobs"] + second["jobs"]}
    assert all(j.status is PrivacyStatus.COMPLETE for j in done.values()), [j.errors for j in done.values()]
    assert len({j.batch_id for j in done.values()}) == 1
    assert {(i.namespace, i.value) for i in done["person-1"].identities or ()} == linked

    erased = [done[k] for k in ("a", "b", "person-1")]
    marker = delete_marker(erased[0].batch_id or "", [j.job_id for j in erased])
    for name, path in tables(config).items():
        kind = "event" if name.startswith("events") else "destination" if name == "audience" else "profile"
        # One DELETE for the three erasures, each person's receipt counting the rows that held them.
        assert [json.dumps(m) for m in erasure_commits(path)] in ([], [marker]), name
        for job in erased:
            people = {(i.namespace.lower(), i.value) for i in job.identities or ()}
            held = [r for r in before[name]
                    if {(ns.lower(), i["id"]) for ns, items in r["identityMap"] or [] for i in items} & people]
            receipt = job.receipt(name, kind)
            assert receipt is not None and receipt.rows_affected == len(held), (name, job.user.key)
            assert holding(path, people) == [], (name, job.user.key)
        assert done["c"].receipt(name, kind) is None
        c_rows = holding(path, {(keys["c"][0].lower(), keys["c"][1])})
        assert c_rows, name  # an access request takes nothing away
    assert erasure_commits(config.resolve("profiles/profiles_0")) == [json.loads(marker)]
    for name in ("b", "c"):
        document = json.loads(Path(done[name].access_document or "").read_text())
        assert document["key"] == name and document["profileFragments"]["profiles_0"]
    assert done["a"].access_document is None


def test_under_pdg_a_late_record_of_an_erased_person_links_nobody(spark, tmp_path):
    schema = ("identityMap map<string, array<struct<id: string, primary: boolean>>>, _ingestTime timestamp, "
              "segmentMembership map<string, map<string, struct<status: string, lastQualificationTime: timestamp>>>")
    member = {"ups": {"segment-01": {"status": "realized", "lastQualificationTime": datetime(2024, 1, 1, tzinfo=UTC)}}}
    fragments = [({"ECID": [{"id": "a", "primary": True}]}, datetime(2024, 1, 1, tzinfo=UTC), member),
                 ({"ECID": [{"id": "b", "primary": True}]}, datetime(2024, 1, 1, tzinfo=UTC), member),
                 ({"ECID": [{"id": "x", "primary": True}]}, datetime(2024, 1, 1, tzinfo=UTC), member)]
    spark.createDataFrame(fragments, schema).write.format("delta").save(str(tmp_path / "profiles" / "profiles_0"))
    spark.createDataFrame(fragments[:0], schema).write.format("delta").save(str(tmp_path / "profiles" / "profiles_1"))
    conf = tmp_path / "lake.toml"
    conf.write_text(sample_config(tmp_path, event_datasets=0))
    config = load_config(conf)
    create_privacy_jobs(PrivacyStore(config.privacy_table_path),
                        request([{"namespace": "ECID", "value": "x"}], actions=["delete"]), "demo@Org", "prod")
    [job] = run(spark, config)
    assert job.status is PrivacyStatus.COMPLETE, job.errors
    # Late records of x, ingested before the request and written after it, each holding x and one other.
    late = [({"ECID": [{"id": "x", "primary": True}], "Phone": [{"id": other, "primary": False}]},
             datetime(2024, 1, 2, tzinfo=UTC), None) for other in ("pa", "pb")]
    linked = [({"ECID": [{"id": key, "primary": True}], "Phone": [{"id": phone, "primary": False}]},
               datetime(2024, 1, 2, tzinfo=UTC), None) for key, phone in (("a", "pa"), ("b", "pb"))]
    spark.createDataFrame(late + linked, schema).write.format("delta").mode("append").save(
        str(tmp_path / "profiles" / "profiles_1"))
    store = JobStore(config.job_table_path)
    body = {"destination": EXPORT["destination"], "schema": EXPORT["schema"],
            "mergePolicy": {"id": "timestampOrdered-pdg-mp", "version": 1},
            "filter": {"segments": [{"segmentId": "segment-01"}]}}
    record = run_job(store, config, create_job(store, config, body, "demo@Org", "prod").id, spark)
    assert record.status is JobStatus.SUCCEEDED, record.errors
    # a and b stay two people: x's records, left out of the merge, also link nobody.
    exported = read_rows(config.resolve("exports/audience"))
    keys = sorted(i["id"] for r in exported for ns, items in r["identityMap"] for i in items if ns == "ECID")
    assert keys == ["a", "b"] and record.metrics.total_exported_profile_counter == 2
