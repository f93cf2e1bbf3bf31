"""Mirror destinations: a sequence of jobs in which people enter, change and leave, the mirror against a
plain-Python reference after each step, and the change feed read with delta-rs; and replays of jobs at
the table versions they read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from jobs.control import (
    JobStore,
    ScheduleStore,
    create_due_jobs,
    create_job,
    create_schedule,
    replay_job,
    run_job,
)
from jobs.engine import audience, merge, mirror
from jobs.spec import InputVersionGone, JobRecord, JobStatus, load_config

from ..reference import read_rows
from .helpers import FRAGMENT, ids, member, ts

pytestmark = pytest.mark.spark

CONFIG = """
lakeRoot = "{root}"
jobTable = "jobs"
defaultOrg = "demo@Org"
defaultSandbox = "prod"

[[profileDatasets]]
id = "crm"
path = "profiles/crm"

[[destinationDatasets]]
id = "mirror"
path = "out/mirror"
schemaName = "_xdm.context.profile"
mode = "mirror"

[[destinationDatasets]]
id = "dv-mirror"
path = "out/dv-mirror"
schemaName = "_xdm.context.profile"
mode = "mirror"
deletionVectors = true

[[destinationDatasets]]
id = "by-segment"
path = "out/by-segment"
schemaName = "_xdm.context.profile"
mode = "mirror"

[[destinationDatasets]]
id = "appended"
path = "out/appended"
schemaName = "_xdm.context.profile"

[[destinationDatasets]]
id = "replayed"
path = "out/replayed"
schemaName = "_xdm.context.profile"

[[destinationDatasets]]
id = "mirror-copy"
path = "out/mirror-copy"
schemaName = "_xdm.context.profile"
mode = "mirror"

[[mergePolicies]]
id = "latest"
version = 1
attributeMerge = "timestampOrdered"
default = true
"""
SEGMENTS = ("seg-a", "seg-b")


def fragment(key: str, day: int, email: str | None = None, **statuses: str):
    memberships = {"ups": {s.replace("_", "-"): member(v, ts(day)) for s, v in statuses.items()}} if statuses else None
    return (ids(key), ts(day), memberships, None, {"address": email} if email else None)


class Lake:
    """The crm dataset, appended to step by step, and the merged profiles a reference keeps of it."""

    def __init__(self, spark, root):
        self.spark, self.root, self.fragments = spark, root, []
        (root / "lake.toml").write_text(CONFIG.format(root=root))
        self.config = load_config(root / "lake.toml")
        self.store = JobStore(self.config.job_table_path)

    def add(self, *fragments) -> None:
        self.fragments += fragments
        self.spark.createDataFrame(list(fragments), FRAGMENT).write.format("delta").mode("append").save(
            str(self.root / "profiles" / "crm"))

    def reference(self, segments=SEGMENTS) -> dict[tuple[str, str | None], str | None]:
        """(key, segment or None) -> email of every qualifying profile: the latest non-null email and,
        per segment, the latest status."""
        email: dict[str, str] = {}
        status: dict[str, dict[str, str]] = {}
        for identity_map, _, memberships, _, address in sorted(self.fragments, key=lambda f: f[1]):
            key = identity_map["ECID"][0]["id"]
            if address:
                email[key] = address["address"]
            for segment, value in (memberships or {}).get("ups", {}).items():
                status.setdefault(key, {})[segment] = value["status"]
        keys = {f[0]["ECID"][0]["id"] for f in self.fragments}
        return {(key, segment): email.get(key) for key in keys for segment in segments
                if status.get(key, {}).get(segment) in ("realized", "existing")}

    def run(self, destination: str = "mirror", per_segment: bool = False,
            from_ingest: datetime | None = None) -> JobRecord:
        window = {"fromIngestTimestamp": from_ingest.isoformat().replace("+00:00", "Z")} if from_ingest else {}
        body = {"fields": "personalEmail.address",
                "filter": {"segments": [{"segmentId": s} for s in SEGMENTS], **window},
                "destination": {"datasetId": destination, "segmentPerBatch": per_segment},
                "schema": {"name": "_xdm.context.profile"}}
        record = run_job(self.store, self.config, create_job(self.store, self.config, body, "demo@Org", "prod").id,
                         self.spark)
        assert record.status is JobStatus.SUCCEEDED, record.errors
        return record

    def path(self, destination: str = "mirror") -> str:
        return self.config.resolve(f"out/{destination}")


def mirrored(path: str, per_segment: bool = False) -> dict[tuple[str, str | None], str | None]:
    rows = read_rows(path)
    found = {(r["_profileKeyId"], r["_segmentId"]): (r["personalEmail"] or {}).get("address") for r in rows}
    assert len(found) == len(rows), "one row per key (and segment)"
    return found


def combined(reference: dict[tuple[str, str | None], str | None]) -> dict[tuple[str, str | None], str | None]:
    return {(key, None): email for (key, _), email in reference.items()}


def changes(path: str, version: int | None) -> dict[str, set[str]]:
    """The change feed of one version, read with delta-rs: change type -> profile keys."""
    assert version is not None, "the job committed a version"
    rows = pa.table(DeltaTable(path).load_cdf(starting_version=version, ending_version=version).read_all()).to_pylist()
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["_change_type"], set()).add(row["_profileKeyId"])
    return found


def counters(record: JobRecord) -> tuple[int | None, int | None, int | None]:
    m = record.metrics
    return m.inserted_profile_counter, m.updated_profile_counter, m.deleted_profile_counter


@pytest.fixture
def lake(spark, tmp_path):
    return Lake(spark, tmp_path)


def test_a_mirror_follows_people_who_enter_change_and_leave(lake):
    lake.add(fragment("p1", 1, "one@x", seg_a="realized"), fragment("p2", 1, "two@x", seg_a="realized"),
             fragment("p3", 1, "three@x", seg_b="existing"), fragment("p4", 1, "four@x"))
    first = lake.run()
    assert mirrored(lake.path()) == combined(lake.reference()) == {
        ("p1", None): "one@x", ("p2", None): "two@x", ("p3", None): "three@x"}
    assert counters(first) == (3, 0, 0)
    assert first.metrics.total_exported_profile_counter == 3
    assert first.metrics.destination_version == 1  # version 0 created the table
    assert changes(lake.path(), 1) == {"insert": {"p1", "p2", "p3"}}

    lake.add(fragment("p2", 2, "two@new"), fragment("p3", 2, seg_b="exited"), fragment("p4", 2, seg_a="realized"))
    second = lake.run()
    assert mirrored(lake.path()) == combined(lake.reference())
    assert counters(second) == (1, 1, 1)
    assert changes(lake.path(), 2) == {"insert": {"p4"}, "update_preimage": {"p2"}, "update_postimage": {"p2"},
                                       "delete": {"p3"}}  # p1 did not change: not rewritten
    assert second.metrics.exported_profile_by_namespace_counter == {"ECID": 3}

    # peek shows the mirror as the first job left it, and finds the rows its record counts.
    peeked = subprocess.run([sys.executable, "-m", "jobs", "--conf", str(lake.root / "lake.toml"), "peek",
                             str(first.id), "--limit", "5"], capture_output=True, text=True, timeout=300)
    assert peeked.returncode == 0, peeked.stderr
    assert {json.loads(line)["_profileKeyId"] for line in peeked.stdout.splitlines()} == {"p1", "p2", "p3"}
    assert "3 rows in the destination" in peeked.stderr

    unchanged = lake.run()
    assert counters(unchanged) == (0, 0, 0)
    assert mirrored(lake.path()) == combined(lake.reference())
    rows = read_rows(lake.path())
    assert {r["_profileKeyId"]: r["_jobId"] for r in rows} == {"p1": first.id, "p2": second.id, "p4": second.id}
    assert all(r["_valuesHash"] is not None and r["_identityNamespaces"] == ["ECID"] for r in rows)


def test_a_mirror_written_before_its_rows_had_hashes_gets_them_from_its_next_incremental_job(lake, spark):
    lake.add(fragment("p1", 1, "one@x", seg_a="realized"), fragment("p2", 1, "two@x", seg_a="realized"),
             fragment("p3", 1, "three@x", seg_b="realized"))
    lake.run()
    # The mirror as the previous version wrote it: no _valuesHash or _identityNamespaces columns.
    older = spark.read.format("delta").load(lake.path()).drop("_valuesHash", "_identityNamespaces")
    older.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(lake.path())
    lake.add(fragment("p3", 3, "three@new"), fragment("p2", 3, seg_a="exited"))
    record = lake.run(from_ingest=ts(2))
    assert mirrored(lake.path()) == combined(lake.reference()) == {("p1", None): "one@x", ("p3", None): "three@new"}
    # It read every profile: p1, unchanged, got its hash too (an update whose values are the same).
    assert counters(record) == (0, 2, 1)
    assert all(r["_valuesHash"] is not None and r["_identityNamespaces"] == ["ECID"] for r in read_rows(lake.path()))
    assert record.metrics.total_exported_profile_counter == 2
    assert counters(lake.run(from_ingest=ts(3))) == (0, 0, 0)


@pytest.mark.parametrize("destination", ["mirror", "dv-mirror"])
@pytest.mark.parametrize("merged", ["every key", "changed keys"])
def test_an_incremental_job_touches_the_changed_keys_and_removes_those_that_left(lake, monkeypatch, destination,
                                                                                 merged):
    # A small input merges every key, then keeps the changed profiles; a larger one merges only its changed keys.
    if merged == "changed keys":
        monkeypatch.setattr(merge, "SMALL_INPUT", 0)
    lake.add(fragment("p1", 1, "one@x", seg_a="realized"), fragment("p2", 1, "two@x", seg_a="realized"),
             fragment("p3", 1, "three@x", seg_b="realized"))
    lake.run(destination)
    lake.add(fragment("p1", 3, seg_a="exited"), fragment("p5", 3, "five@x", seg_b="realized"),
             fragment("p3", 3, "three@new"))
    record = lake.run(destination, from_ingest=ts(2))
    assert mirrored(lake.path(destination)) == combined(lake.reference())
    assert counters(record) == (1, 1, 1)
    features = DeltaTable(lake.path(destination)).protocol().reader_features or []
    assert ("deletionVectors" in features) == (destination == "dv-mirror")
    assert changes(lake.path(destination), record.metrics.destination_version) == {
        "insert": {"p5"}, "update_preimage": {"p3"}, "update_postimage": {"p3"}, "delete": {"p1"}}
    assert record.metrics.total_exported_profile_counter == 3  # the audience after the job: p2, p3, p5


def test_an_incremental_job_on_a_probed_lake_removes_a_person_whose_only_fragment_was_updated_in_place(
        lake, monkeypatch):
    # A lake the probe reads, with a share of members small enough that an append job merges only the
    # keys with a qualifying fragment (segments.candidate_filter).
    monkeypatch.setattr(merge, "SMALL_INPUT", 0)
    lake.add(fragment("p1", 1, "one@x", seg_a="realized"), fragment("p2", 1, "two@x", seg_b="realized"),
             *[fragment(f"n{i}", 1, f"n{i}@x") for i in range(6)])
    lake.run()
    # p1's fragment rewritten in place (an upserting dataset): no fragment of p1 qualifies any more.
    lake.fragments = [f for f in lake.fragments if f[0]["ECID"][0]["id"] != "p1"] + [fragment("p1", 3, seg_a="exited")]
    lake.spark.createDataFrame(lake.fragments, FRAGMENT).write.format("delta").mode("overwrite").save(
        str(lake.root / "profiles" / "crm"))
    record = lake.run(from_ingest=ts(2))
    assert mirrored(lake.path()) == combined(lake.reference()) == {("p2", None): "two@x"}
    assert counters(record) == (0, 0, 1)


@pytest.mark.parametrize("destination", ["mirror", "dv-mirror"])
def test_a_jobs_audience_counts_come_from_its_change_feed_unless_another_commit_came_between(
        lake, spark, monkeypatch, destination):
    lake.add(fragment("p1", 1, "one@x", seg_a="realized"), fragment("p2", 1, "two@x", seg_a="realized"),
             fragment("p3", 1, "three@x", seg_b="realized"))
    assert lake.run(destination).metrics.total_exported_profile_counter == 3  # counted from the mirror
    whole_mirror_reads = []
    counted = mirror.audience_counts

    def spied(*args):
        whole_mirror_reads.append(args)
        return counted(*args)

    monkeypatch.setattr(mirror, "audience_counts", spied)

    lake.add(fragment("p1", 3, seg_a="exited"), fragment("p4", 3, "four@x", seg_b="realized"),
             (ids("p3", Email="three@new"), ts(3), None, None, {"address": "three@new"}))
    record = lake.run(destination, from_ingest=ts(2))
    assert counters(record) == (1, 1, 1) and not whole_mirror_reads
    assert record.metrics.total_exported_profile_counter == 3
    assert record.metrics.exported_profile_by_namespace_counter == {"ECID": 3, "Email": 1}
    assert counters(unchanged := lake.run(destination, from_ingest=ts(3))) == (0, 0, 0) and not whole_mirror_reads
    assert unchanged.metrics.total_exported_profile_counter == 3

    # An erasure-like commit between two jobs: the next job counts the whole mirror.
    spark.sql(f"DELETE FROM delta.`{lake.path(destination)}` WHERE _profileKeyId = 'p2'")
    lake.add(fragment("p5", 4, "five@x", seg_a="realized"))
    record = lake.run(destination, from_ingest=ts(3))
    assert len(whole_mirror_reads) == 1
    assert record.metrics.total_exported_profile_counter == 3  # p3, p4, p5
    assert record.metrics.exported_profile_by_namespace_counter == {"ECID": 3, "Email": 1}

    # VACUUM, Spark's and delta-rs's, leaves the kept counts alone (on one of the two: delta-rs does not
    # write to tables with deletion vectors).
    kept_file = Path(lake.path(destination)) / audience.KEPT_FOLDER / f"{record.metrics.destination_version}.json"
    assert kept_file.exists()
    if destination == "mirror":
        # Few listing tasks: Spark's default is 10,000.
        quick = {"spark.databricks.delta.retentionDurationCheck.enabled": "false",
                 "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2"}
        for key, value in quick.items():
            spark.conf.set(key, value)
        try:
            spark.sql(f"VACUUM delta.`{lake.path(destination)}` RETAIN 0 HOURS")
        finally:
            for key in quick:
                spark.conf.unset(key)
        DeltaTable(lake.path(destination)).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        assert kept_file.exists()


def test_an_incremental_schedule_keeps_a_mirror_in_sync_when_a_person_exits_between_slots(lake):
    lake.add(fragment("p1", 1, "one@x", seg_a="realized"), fragment("p2", 1, "two@x", seg_b="realized"))
    schedules = ScheduleStore(lake.config.schedule_table_path)
    job = {"fields": "personalEmail.address", "filter": {"segments": [{"segmentId": s} for s in SEGMENTS]},
           "destination": {"datasetId": "mirror"}, "schema": {"name": "_xdm.context.profile"}}
    create_schedule(schedules, lake.config, {"cron": "* * * * *", "incremental": True, "job": job}, "demo@Org", "prod")
    now = datetime.now(UTC)

    def slot(minute: int) -> JobRecord:
        [due] = create_due_jobs(schedules, lake.store, lake.config, now + timedelta(minutes=minute))
        record = run_job(lake.store, lake.config, due.id, lake.spark)
        assert record.status is JobStatus.SUCCEEDED, record.errors
        return record

    first = slot(0)
    assert first.definition().filter.from_ingest_timestamp is None  # the first run is a full one
    lake.add(fragment("p1", 2, seg_a="exited"), fragment("p3", 2, "three@x", seg_a="realized"))
    second = slot(1)
    assert second.definition().filter.from_ingest_timestamp == ts(1)
    assert mirrored(lake.path()) == combined(lake.reference()) == {("p2", None): "two@x", ("p3", None): "three@x"}
    assert counters(second) == (1, 0, 1)
    assert changes(lake.path(), second.metrics.destination_version) == {"insert": {"p3"}, "delete": {"p1"}}
    third = slot(2)
    assert counters(third) == (0, 0, 0) and mirrored(lake.path()) == combined(lake.reference())


def test_a_per_segment_mirror_keeps_one_row_per_segment_and_key(lake):
    lake.add(fragment("p1", 1, "one@x", seg_a="realized", seg_b="realized"), fragment("p2", 1, seg_b="realized"))
    first = lake.run("by-segment", per_segment=True)
    assert mirrored(lake.path("by-segment")) == lake.reference()
    assert first.metrics.exported_profile_by_segment_counter == {"ups": {"seg-a": 1, "seg-b": 2}}
    lake.add(fragment("p1", 2, seg_b="exited"), fragment("p2", 2, seg_a="realized"))
    second = lake.run("by-segment", per_segment=True, from_ingest=ts(1, 12))
    assert mirrored(lake.path("by-segment")) == lake.reference() == {
        ("p1", "seg-a"): "one@x", ("p2", "seg-a"): None, ("p2", "seg-b"): None}
    assert counters(second) == (1, 2, 1)  # p1 and p2 in their other segment: their memberships changed
    assert second.metrics.exported_profile_by_segment_counter == {"ups": {"seg-a": 2, "seg-b": 1}}


def test_a_rerun_of_a_committed_mirror_job_writes_nothing_and_counts_the_same(lake):
    lake.add(fragment("p1", 1, "one@x", seg_a="realized"), fragment("p2", 1, seg_b="realized"))
    first = lake.run()
    version = DeltaTable(lake.path()).version()
    lake.store.replace(first.updated(status=JobStatus.NEW), expected=[JobStatus.SUCCEEDED])
    again = run_job(lake.store, lake.config, first.id, lake.spark)
    assert again.status is JobStatus.SUCCEEDED, again.errors
    assert DeltaTable(lake.path()).version() == version
    assert counters(again) == counters(first) == (2, 0, 0)
    assert again.metrics.destination_version == first.metrics.destination_version
    assert again.metrics.total_exported_profile_counter == 2


@pytest.mark.parametrize("destination", ["mirror", "dv-mirror"])
def test_a_mirror_whose_creation_was_killed_is_created_by_the_next_job(lake, destination):
    # What a runner killed while creating the table leaves (seen in scripts/faults): Delta's log folder,
    # no commit. CREATE TABLE IF NOT EXISTS failed on it with DELTA_TABLE_NOT_FOUND, in every later job.
    (Path(lake.path(destination)) / "_delta_log" / "_staged_commits").mkdir(parents=True)
    lake.add(fragment("p1", 1, "one@x", seg_a="realized"), fragment("p2", 1, seg_b="realized"))
    assert counters(lake.run(destination)) == (2, 0, 0)
    table = DeltaTable(lake.path(destination))
    assert table.version() == 1  # the creation, then the job's MERGE
    assert table.metadata().configuration[mirror.CHANGE_DATA_FEED] == "true"
    assert table.metadata().configuration.get(mirror.DELETION_VECTORS) == (
        "true" if destination == "dv-mirror" else "false")


def test_a_mirror_job_frees_its_checkpointed_source(lake):
    def cached():  # what the session keeps, but Delta's own caches of table state
        rdds = lake.spark.sparkContext._jsc.getPersistentRDDs()
        return {k for k in rdds.keySet() if not str(rdds.get(k).name()).startswith("Delta Table State")}

    before = cached()
    lake.add(fragment("p1", 1, "one@x", seg_a="realized"), fragment("p2", 1, seg_b="realized"))
    assert counters(lake.run()) == (2, 0, 0)
    assert cached() <= before


def test_a_mirror_over_an_append_table_fails_and_writes_nothing(lake):
    lake.add(fragment("p1", 1, "one@x", seg_a="realized"))
    lake.run("appended")
    lake.config = load_config_with(lake, 'path = "out/appended"\nschemaName = "_xdm.context.profile"\nmode = "mirror"')
    store = lake.store
    body = {"destination": {"datasetId": "appended"}, "schema": {"name": "_xdm.context.profile"}}
    record = run_job(store, lake.config, create_job(store, lake.config, body, "demo@Org", "prod").id, lake.spark)
    assert record.status is JobStatus.FAILED
    [error] = record.errors
    assert error.code == "DESTINATION_NOT_A_MIRROR"
    assert "out/appended" in error.msg and "_profileKeyNamespace" in error.msg
    assert DeltaTable(lake.path("appended")).version() == 0


def load_config_with(lake: Lake, appended: str):
    text = (lake.root / "lake.toml").read_text().replace(
        'path = "out/appended"\nschemaName = "_xdm.context.profile"', appended)
    (lake.root / "lake.toml").write_text(text)
    return load_config(lake.root / "lake.toml")


def exported(path: str, batch_ids: list[str]) -> list[tuple]:
    """A job's rows without their batch ids, in a stable order."""
    batches = "', '".join(batch_ids)
    rows = read_rows(path, f"_batchId IN ('{batches}')")
    return sorted((str(r["identityMap"]), str(r["segmentMembership"]), str(r["personalEmail"])) for r in rows)


def replayed(lake: Lake, original: JobRecord, destination: str) -> JobRecord:
    replay = replay_job(lake.store, lake.config, original.id, destination, "demo@Org", "prod")
    assert replay.replay_of == original.id and replay.inputs and original.inputs
    assert replay.inputs.versions == original.inputs.versions
    record = run_job(lake.store, lake.config, replay.id, lake.spark)
    assert record.status is JobStatus.SUCCEEDED, record.errors
    return record


def test_a_replay_writes_the_rows_its_job_wrote_after_the_lake_changed(lake):
    lake.add(fragment("p1", 1, "one@x", seg_a="realized"), fragment("p2", 1, "two@x", seg_b="realized"),
             fragment("p3", 1, "three@x"))
    original = lake.run("appended")
    lake.add(fragment("p1", 2, "one@new"), fragment("p2", 2, seg_b="exited"), fragment("p3", 2, seg_a="realized"))
    replay = replayed(lake, original, "replayed")
    assert exported(lake.path("replayed"), replay.export_destination.batch_ids()) == exported(
        lake.path("appended"), original.export_destination.batch_ids())
    assert replay.metrics.total_exported_profile_counter == original.metrics.total_exported_profile_counter == 2

    mirror = lake.run()  # the lake now: p1 with its new email, p3; p2 left
    assert {k for k, _ in mirrored(lake.path())} == {"p1", "p3"}
    lake.add(fragment("p4", 3, "four@x", seg_a="realized"))
    copy = replayed(lake, mirror, "mirror-copy")
    assert mirrored(lake.path("mirror-copy")) == mirrored(lake.path())  # p4 came after the job: not in its replay
    assert counters(copy) == (2, 0, 0)


def test_a_replay_of_a_vacuumed_version_names_the_table_and_the_version(lake, spark):
    lake.add(fragment("p1", 1, "one@x", seg_a="realized"))
    original = lake.run("appended")
    crm = str(lake.root / "profiles" / "crm")
    spark.createDataFrame([fragment("p9", 5, seg_a="realized")], FRAGMENT).write.format("delta").mode(
        "overwrite").save(crm)
    DeltaTable(crm).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    with pytest.raises(InputVersionGone) as caught:
        replay_job(lake.store, lake.config, original.id, "replayed", "demo@Org", "prod")
    message = str(caught.value)
    assert f"job {original.id} cannot be replayed" in message
    assert f"dataset crm ({crm}) no longer has version 0" in message and "VACUUM" in message
    assert caught.value.code == "INPUT_VERSION_GONE" and caught.value.http_status == 422


def test_a_runner_killed_mid_merge_leaves_the_mirror_whole_and_its_retry_finishes_it(lake):
    lake.add(fragment("p1", 1, "one@x", seg_a="realized"), fragment("p2", 1, "two@x", seg_a="realized"))
    lake.run()
    before = DeltaTable(lake.path()).version()
    lake.add(fragment("p2", 2, "two@new"), fragment("p3", 2, "three@x", seg_b="realized"),
             fragment("p1", 2, seg_a="exited"))
    body = {"fields": "personalEmail.address", "filter": {"segments": [{"segmentId": s} for s in SEGMENTS]},
            "destination": {"datasetId": "mirror"}, "schema": {"name": "_xdm.context.profile"}}
    job = create_job(lake.store, lake.config, body, "demo@Org", "prod")
    killer = Path(__file__).with_name("merge_killer.py")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "scripts")]),
           "SPARK_LOCAL_IP": "127.0.0.1"}
    argv = [sys.executable, str(killer), str(lake.root / "lake.toml"), str(job.id), lake.path()]
    died = subprocess.run(argv, env=env, start_new_session=True, capture_output=True, timeout=300)
    assert died.returncode == -9, died.stderr.decode()[-2000:]
    # The kill landed while the MERGE wrote its files, before its commit: the mirror is as before.
    assert DeltaTable(lake.path()).version() == before
    assert mirrored(lake.path()) == {("p1", None): "one@x", ("p2", None): "two@x"}

    killed = lake.store.get(job.id, "demo@Org", "prod")
    assert killed.status is JobStatus.PROCESSING  # as the reaper finds it once the lease expires
    lake.store.replace(killed.updated(status=JobStatus.NEW), expected=[JobStatus.PROCESSING])
    retried = run_job(lake.store, lake.config, job.id, lake.spark)
    assert retried.status is JobStatus.SUCCEEDED, retried.errors
    assert mirrored(lake.path()) == combined(lake.reference())
    commits = [c for c in DeltaTable(lake.path()).history()
               if json.loads(c.get("userMetadata") or "{}").get("jobId") == job.id]
    assert len(commits) == 1
    assert counters(retried) == (1, 1, 1)
