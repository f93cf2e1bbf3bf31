"""The job table through deltalake, on a temporary folder: no Spark, no JVM."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from jobs.control.jobs import JOB_TABLE_SCHEMA, JobNotFound, JobStore, StatusConflict, new_record
from jobs.spec.config import load_config
from jobs.spec.jobs import JobRecord, JobStatus, parse_definition

REPO = Path(__file__).resolve().parents[2]
CONFIG = load_config(REPO / "conf" / "export.toml")
DEFINITION = parse_definition({
    "fields": "identities.id,personalEmail.address",
    "filter": {"segments": [{"segmentId": "s1"}]},
    "destination": {"datasetId": "5b7c86968f7b6501e21ba9df"},
    "schema": {"name": "_xdm.context.profile"},
})
ORG, SANDBOX = "demo@Org", "prod"


@pytest.fixture
def store(tmp_path) -> JobStore:
    return JobStore(str(tmp_path / "system" / "export_jobs"))


def create(store: JobStore, created_ms: int = 1_000, org: str = ORG, sandbox: str = SANDBOX,
           request_id: str = "req") -> JobRecord:
    return store.create(
        lambda job_id: new_record(DEFINITION, CONFIG, job_id, org, sandbox, request_id, created_ms)
    )


def ids(records) -> list[int]:
    return [r.id for r in records]


# ---------------------------------------------------------------- create / get


def test_empty_store_has_no_jobs(store):
    assert store.list(ORG, SANDBOX) == []
    assert store.ids_with_status(JobStatus.NEW) == []
    with pytest.raises(JobNotFound):
        store.get(1)


def test_create_assigns_increasing_ids_from_one(store):
    assert [create(store).id for _ in range(3)] == [1, 2, 3]


def test_create_passes_the_id_to_the_builder(store):
    seen = []

    def build(job_id):
        seen.append(job_id)
        return new_record(DEFINITION, CONFIG, job_id, ORG, SANDBOX, "req", 1_000)

    record = store.create(build)

    assert seen == [1]
    assert record.id == 1


def test_ids_increase_across_orgs(store):
    assert create(store, org="a").id == 1
    assert create(store, org="b").id == 2


def test_create_writes_a_delta_table_with_top_level_columns(store):
    record = create(store, created_ms=1234)

    rows = DeltaTable(store.path).to_pyarrow_table().to_pylist()
    assert len(rows) == 1
    row = rows[0]
    assert {k: row[k] for k in ("id", "imsOrgId", "sandboxName", "status", "creationTime", "updateTime")} == {
        "id": 1, "imsOrgId": ORG, "sandboxName": SANDBOX, "status": "NEW",
        "creationTime": 1234, "updateTime": 1234,
    }
    assert JobRecord.model_validate_json(row["record"]) == record


def test_get_returns_the_stored_record(store):
    created = create(store)

    assert store.get(created.id, ORG, SANDBOX) == created
    assert store.get(created.id) == created


def test_get_from_another_org_is_not_found(store):
    created = create(store)

    with pytest.raises(JobNotFound, match=f"no export job {created.id}"):
        store.get(created.id, "other@Org", SANDBOX)


def test_get_from_another_sandbox_is_not_found(store):
    created = create(store)

    with pytest.raises(JobNotFound):
        store.get(created.id, ORG, "dev")


def test_get_unknown_id_is_not_found(store):
    create(store)

    with pytest.raises(JobNotFound):
        store.get(99, ORG, SANDBOX)


def test_org_with_quote_is_matched_literally(store):
    created = create(store, org="o'brien@Org")

    assert store.get(created.id, "o'brien@Org", SANDBOX) == created
    assert ids(store.list("o'brien@Org", SANDBOX)) == [created.id]
    with pytest.raises(JobNotFound):
        store.get(created.id, "o' OR '1'='1", SANDBOX)


# ---------------------------------------------------------------- list


def test_list_is_newest_first(store):
    for created_ms in (1_000, 3_000, 2_000):
        create(store, created_ms=created_ms)

    assert ids(store.list(ORG, SANDBOX)) == [2, 3, 1]


def test_list_breaks_creation_time_ties_by_id_descending(store):
    for _ in range(3):
        create(store, created_ms=5_000)

    assert ids(store.list(ORG, SANDBOX)) == [3, 2, 1]


def test_list_honours_limit(store):
    for n in range(5):
        create(store, created_ms=1_000 + n)

    assert ids(store.list(ORG, SANDBOX, limit=2)) == [5, 4]


def test_list_only_shows_the_tenants_jobs(store):
    mine = create(store)
    create(store, org="other@Org")
    create(store, sandbox="dev")

    assert ids(store.list(ORG, SANDBOX)) == [mine.id]


def test_list_pages_with_before_cursor_without_skips_or_repeats(store):
    # Seven jobs, some sharing a creation time, so the cursor needs the id tie-break.
    for created_ms in (1_000, 1_000, 2_000, 2_000, 2_000, 3_000, 4_000):
        create(store, created_ms=created_ms)

    pages = []
    before = None
    while True:
        page = store.list(ORG, SANDBOX, limit=3, after=before)
        if not page:
            break
        pages.append(ids(page))
        before = (page[-1].creation_time, page[-1].id)

    assert pages == [[7, 6, 5], [4, 3, 2], [1]]


def test_list_before_cursor_excludes_the_cursor_job(store):
    for _ in range(3):
        create(store, created_ms=1_000)

    assert ids(store.list(ORG, SANDBOX, after=(1_000, 2))) == [1]
    assert ids(store.list(ORG, SANDBOX, after=(1_001, 0))) == [3, 2, 1]
    assert store.list(ORG, SANDBOX, after=(1_000, 1)) == []


def test_list_filters_by_status(store):
    for _ in range(3):
        create(store)
    second = store.get(2)
    store.replace(second.updated(status=JobStatus.PROCESSING), [JobStatus.NEW])

    assert ids(store.list(ORG, SANDBOX, status=JobStatus.PROCESSING)) == [2]
    assert ids(store.list(ORG, SANDBOX, status=JobStatus.NEW)) == [3, 1]
    assert store.list(ORG, SANDBOX, status=JobStatus.SUCCEEDED) == []
    assert store.ids_with_status(JobStatus.NEW) == [1, 3]


def test_recent_namespaces_are_those_the_tenants_succeeded_jobs_counted(store):
    counted = [{"ECID": 3, "Email": 1}, {"CRMID": 2}, {"Phone": 5}]
    statuses = [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED, JobStatus.FAILED]
    for by_namespace, status in zip(counted, statuses, strict=True):
        record = create(store)
        metrics = record.metrics.updated(exported_profile_by_namespace_counter=by_namespace)
        store.replace(record.updated(status=status, metrics=metrics), [JobStatus.NEW])
    create(store, org="other@Org")

    assert store.recent_namespaces(ORG, SANDBOX) == {"ECID", "Email", "CRMID"}
    assert store.recent_namespaces(ORG, SANDBOX, jobs=1) == {"CRMID"}
    assert store.recent_namespaces("other@Org", SANDBOX) == set()


# ---------------------------------------------------------------- replace


def test_replace_with_expected_status_succeeds(store):
    created = create(store)
    claimed = created.updated(status=JobStatus.PROCESSING, update_time=2_000, stage="exporting")

    returned = store.replace(claimed, [JobStatus.NEW])

    assert returned == claimed
    stored = store.get(created.id)
    assert stored == claimed
    assert stored.status is JobStatus.PROCESSING
    row = DeltaTable(store.path).to_pyarrow_table().to_pylist()[0]
    assert (row["status"], row["updateTime"], row["creationTime"]) == ("PROCESSING", 2_000, 1_000)


def test_replace_accepts_any_of_several_expected_statuses(store):
    created = create(store)
    cancelled = created.updated(status=JobStatus.CANCELLED)

    store.replace(cancelled, [JobStatus.PROCESSING, JobStatus.NEW])

    assert store.get(created.id).status is JobStatus.CANCELLED


def test_replace_with_wrong_expected_status_conflicts_and_changes_nothing(store):
    created = create(store)
    version_before = DeltaTable(store.path).version()
    finished = created.updated(status=JobStatus.SUCCEEDED, update_time=9_000)

    with pytest.raises(StatusConflict) as caught:
        store.replace(finished, [JobStatus.PROCESSING, JobStatus.CANCELLING])

    assert caught.value.status == "NEW"
    assert str(caught.value) == "job 1 is NEW, not PROCESSING, CANCELLING"
    assert store.get(created.id) == created
    assert DeltaTable(store.path).version() == version_before


def test_replace_only_touches_its_own_job(store):
    first, second = create(store), create(store)

    store.replace(first.updated(status=JobStatus.PROCESSING), [JobStatus.NEW])

    assert store.get(second.id) == second


def test_second_claim_of_same_job_conflicts(store):
    created = create(store)
    claim = created.updated(status=JobStatus.PROCESSING)
    store.replace(claim, [JobStatus.NEW])

    with pytest.raises(StatusConflict):
        store.replace(claim, [JobStatus.NEW])


def test_replace_unknown_job_is_not_found(store):
    created = create(store)

    with pytest.raises(JobNotFound):
        store.replace(created.updated(id=42), [JobStatus.NEW])


def test_a_job_table_names_its_deployment_at_random_and_an_older_one_keeps_its_path_hash(store, tmp_path):
    assert store.deployment("legacy") == "legacy"  # no table yet
    create(store)
    made = store.deployment("legacy")
    assert made == str(uuid.UUID(made)) == DeltaTable(store.path).metadata().id
    assert JobStore(store.path).deployment("legacy") == made  # stored: every process reads it

    older = str(tmp_path / "older")
    write_deltalake(older, pa.Table.from_pylist([], schema=JOB_TABLE_SCHEMA))
    assert JobStore(older).deployment("path hash") == "path hash"
