"""The HTTP API against a real server (docs/reference/http-api.md and the seeds' shapes); no Spark."""

from __future__ import annotations

import copy
import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobs.control import DeliveryStore, JobStore, PrivacyStore, ScheduleStore, advance_watermark, incremental_window
from jobs.shells.http import make_server, running
from jobs.spec import JobInputs, JobStatus, load_config
from tests.api.conftest import PRIVATE_DESTINATION, TENANTS, auth

# The seeds' POST body, with the test config's destination and an event field it has.
SEED_BODY = {
    "fields": "identities.id,personalEmail.address",
    "mergePolicy": {"id": "timestampOrdered-none-mp", "version": 1},
    "filter": {
        "segments": [
            {"segmentId": "52c26d0d-45f2-47a2-ab30-ed06abc981ff", "segmentNs": "ups", "status": ["realized"]}
        ],
        "segmentQualificationTime": {"startTime": "2018-01-01T00:00:00Z", "endTime": "2018-02-01T00:00:00Z"},
        "fromIngestTimestamp": "2018-01-01T00:00:00Z",
        "emptyProfiles": True,
    },
    "additionalFields": {
        "eventList": {
            "fields": "_id",
            "filter": {"fromIngestTimestamp": "2018-01-01T00:00:00Z", "toIngestTimestamp": "2020-01-01T00:00:00Z"},
        }
    },
    "destination": {"datasetId": "audience", "segmentPerBatch": False},
    "schema": {"name": "_xdm.context.profile"},
    "evaluationInfo": {"segmentation": True},
}
MINIMAL_BODY = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
# The keys of the seeds' NEW record, and the ones ours adds (docs/reference/job-record.md#what-a-run-records).
SEED_RECORD_KEYS = {
    "id", "jobType", "destination", "fields", "schema", "imsOrgId", "status", "filter", "additionalFields",
    "mergePolicy", "profileInstanceId", "metrics", "computeGatewayJobId", "creationTime", "updateTime",
    "requestId",
}
OUR_RECORD_KEYS = {"sandboxName", "evaluationInfo", "errors", "warnings"}
PROBLEM_KEYS = {"type", "title", "status", "detail", "errors"}
CANCELLING = {"status": True, "message": "Export job has been marked for cancelling"}


def create(client: httpx.Client, org: str = "orgA", sandbox: str = "prod", body: dict = MINIMAL_BODY) -> dict:
    response = client.post("/export/jobs", json=body, headers=auth(org, sandbox))
    assert response.status_code == 200, response.text
    return response.json()


def problem(response: httpx.Response, status: int) -> dict[str, str]:
    """The problem document of an error response, as {path: message}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    document = response.json()
    assert set(document) == PROBLEM_KEYS and document["status"] == status and document["detail"]
    return {e["path"]: e["message"] for e in document["errors"]}


# ---------------------------------------------------------------- the seeds' shapes


def test_the_seed_body_is_rejected_for_segmentation_here_and_accepted_without_it(client):
    # This deployment has no segmentationDataset, and the seed's segment has no definition.
    errors = problem(client.post("/export/jobs", json=SEED_BODY, headers=auth()), 400)
    assert list(errors) == ["evaluationInfo.segmentation", "filter.segments[0].segmentId"]
    assert "segmentationDataset" in errors["evaluationInfo.segmentation"]

    body = {k: v for k, v in SEED_BODY.items() if k != "evaluationInfo"}
    record = create(client, body=body)

    assert SEED_RECORD_KEYS <= record.keys() and record.keys() - SEED_RECORD_KEYS <= OUR_RECORD_KEYS
    assert record["status"] == "NEW" and record["jobType"] == "BATCH" and record["profileInstanceId"] == "ups"
    assert (record["imsOrgId"], record["sandboxName"]) == ("orgA", "prod")
    # The seed's segment id is unknown to this lake: created, with a warning naming the field.
    assert [(w["code"], w["path"]) for w in record["warnings"]] == [("UNKNOWN_SEGMENT", "filter.segments[0].segmentId")]
    assert record["filter"] == SEED_BODY["filter"]
    assert record["additionalFields"] == SEED_BODY["additionalFields"]
    assert record["mergePolicy"] == SEED_BODY["mergePolicy"]
    assert record["destination"].keys() == {"datasetId", "segmentPerBatch", "batchId"}
    assert re.fullmatch(r"[0-9a-f]{32}", record["destination"]["batchId"])
    assert record["computeGatewayJobId"] == {"exportJob": ""}
    assert record["creationTime"] == record["updateTime"]
    assert record["metrics"] == {"totalTime": {"startTimeInMs": record["creationTime"]}}
    uuid.UUID(record["requestId"])


def test_get_answers_the_record_as_created(client):
    record = create(client)
    response = client.get(f"/export/jobs/{record['id']}", headers=auth())
    assert response.status_code == 200 and response.json() == record


def test_the_request_id_header_is_kept(client):
    response = client.post("/export/jobs", json=MINIMAL_BODY, headers={**auth(), "x-request-id": "req-42"})
    assert response.json()["requestId"] == "req-42"


def test_a_list_page_has_the_seeds_shape(client):
    newest = [create(client), create(client)]
    page = client.get("/export/jobs", params={"limit": 2}, headers=auth()).json()

    assert page.keys() == {"records", "page", "link"}
    assert [r["id"] for r in page["records"]] == [newest[1]["id"], newest[0]["id"]]
    assert page["records"][0] == newest[1]
    assert page["page"] == {"sortField": "createdTime", "sort": "desc", "pageOffset": None, "pageSize": 2}
    cursor = f"{newest[0]['creationTime']}_{newest[0]['id']}"
    assert page["link"] == {"next": f"/export/jobs/?limit=2&offset={cursor}"}


def test_a_segment_per_batch_job_has_a_batch_per_segment(client):
    body = {**MINIMAL_BODY, "destination": {"datasetId": "audience", "segmentPerBatch": True},
            "filter": {"segments": [{"segmentId": "s1", "status": "exited"}, {"segmentId": "s2"}]}}
    batches = create(client, body=body)["destination"]["batches"]
    assert [(b["segmentId"], b["segmentNs"], b["status"]) for b in batches] == [
        ("s1", "ups", ["exited"]), ("s2", "ups", ["realized", "existing"])]


# ---------------------------------------------------------------- cancelling


def test_deleting_a_new_job_cancels_it_at_once_and_a_second_delete_conflicts(client):
    job_id = create(client)["id"]

    response = client.delete(f"/export/jobs/{job_id}", headers=auth())
    assert response.status_code == 200 and response.json() == CANCELLING
    assert client.get(f"/export/jobs/{job_id}", headers=auth()).json()["status"] == "CANCELLED"

    problem(client.delete(f"/export/jobs/{job_id}", headers=auth()), 409)
    assert client.get(f"/export/jobs/{job_id}", headers=auth()).json()["status"] == "CANCELLED"


def test_a_job_is_replayed_into_another_destination_once_it_has_read_the_lake(client, api_config):
    job = create(client)
    replay = f"/export/jobs/{job['id']}/replay"
    elsewhere = {"destination": {"datasetId": PRIVATE_DESTINATION}}
    early = client.post(replay, json=elsewhere, headers=auth())
    problem(early, 409)
    assert "has not read the lake yet" in early.json()["detail"]
    store = JobStore(api_config.job_table_path)
    record = store.get(job["id"], "orgA", "prod")
    store.replace(record.updated(inputs=JobInputs(versions={"crm": None})), expected=[JobStatus.NEW])

    assert list(problem(client.post(replay, json={"destination": {}}, headers=auth()), 400)) == [
        "destination.datasetId"]
    assert list(problem(client.post(replay, json={"destination": {"datasetId": "nowhere"}}, headers=auth()),
                        400)) == ["destination.datasetId"]
    problem(client.post(replay, json=elsewhere, headers=auth("orgB")), 404)  # another tenant's job

    response = client.post(replay, json=elsewhere, headers=auth())
    assert response.status_code == 200, response.text
    replayed = response.json()
    assert replayed["status"] == "NEW" and replayed["replayOf"] == job["id"] and replayed["id"] != job["id"]
    assert replayed["destination"]["datasetId"] == PRIVATE_DESTINATION
    assert replayed["destination"]["batchId"] != job["destination"]["batchId"]
    assert replayed["inputs"] == {"versions": {"crm": None}}


def test_unknown_job_is_404(client):
    problem(client.get("/export/jobs/987654321", headers=auth()), 404)
    problem(client.delete("/export/jobs/987654321", headers=auth()), 404)


# ---------------------------------------------------------------- authentication


OPERATIONS = {
    "list": lambda c, h: c.get("/export/jobs", headers=h),
    "create": lambda c, h: c.post("/export/jobs", json=MINIMAL_BODY, headers=h),
    "get": lambda c, h: c.get("/export/jobs/1", headers=h),
    "delete": lambda c, h: c.delete("/export/jobs/1", headers=h),
}


def without(name: str) -> dict[str, str]:
    return {k: v for k, v in auth().items() if k != name}


AUTH_FAILURES = {
    "no token": (without("Authorization"), 401, "Authorization"),
    "not a bearer token": ({**auth(), "Authorization": "Basic dG9rZW4tYQ=="}, 401, "Authorization"),
    "wrong token": (auth(token="token-c"), 401, "Authorization"),
    "no api key": (without("x-api-key"), 401, "x-api-key"),
    "org of another tenant": (auth("orgB", token=TENANTS["orgA"][0]), 403, "x-gw-ims-org-id"),
    "sandbox not held": (auth("orgB", "dev"), 403, "x-sandbox-name"),
    "no org": (without("x-gw-ims-org-id"), 400, "x-gw-ims-org-id"),
    "no sandbox": (without("x-sandbox-name"), 400, "x-sandbox-name"),
}


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("case", AUTH_FAILURES)
def test_every_operation_refuses_bad_credentials(client, operation, case):
    headers, status, named = AUTH_FAILURES[case]
    response = OPERATIONS[operation](client, headers)
    assert named in problem(response, status)
    if status == 401 and named == "Authorization":
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_nothing_is_created_without_valid_credentials(client):
    before = client.get("/export/jobs", params={"limit": 1}, headers=auth()).json()["records"]
    problem(client.post("/export/jobs", json=MINIMAL_BODY, headers=auth(token="token-c")), 401)
    assert client.get("/export/jobs", params={"limit": 1}, headers=auth()).json()["records"] == before


def test_another_tenants_or_sandboxs_job_is_invisible(client):
    job_id = create(client, "orgA", "prod")["id"]

    for org, sandbox in (("orgB", "prod"), ("orgA", "dev")):
        problem(client.get(f"/export/jobs/{job_id}", headers=auth(org, sandbox)), 404)
        problem(client.delete(f"/export/jobs/{job_id}", headers=auth(org, sandbox)), 404)
        listed = client.get("/export/jobs", params={"limit": 1000}, headers=auth(org, sandbox)).json()
        assert job_id not in {r["id"] for r in listed["records"]}
    assert client.get(f"/export/jobs/{job_id}", headers=auth()).json()["status"] == "NEW"


def test_another_tenants_or_sandboxs_dataset_is_refused_as_if_it_did_not_exist(client):
    """Tenancy of the data itself: a dataset only orgA/prod owns, named by a job or a schedule elsewhere."""
    body = {**MINIMAL_BODY, "destination": {"datasetId": PRIVATE_DESTINATION}}
    assert client.post("/export/jobs", json=body, headers=auth("orgA", "prod")).status_code == 200
    absent = {**MINIMAL_BODY, "destination": {"datasetId": "elsewhere"}}
    unknown = problem(client.post("/export/jobs", json=absent, headers=auth("orgB")), 400)["destination.datasetId"]
    for org, sandbox in (("orgB", "prod"), ("orgA", "dev")):
        before = client.get("/export/jobs", params={"limit": 1}, headers=auth(org, sandbox)).json()["records"]
        refused = problem(client.post("/export/jobs", json=body, headers=auth(org, sandbox)), 400)
        assert refused == {"destination.datasetId": unknown.replace("elsewhere", PRIVATE_DESTINATION)}
        schedule = {"cron": "0 * * * *", "incremental": True, "job": body}
        response = client.post("/config/schedules", json=schedule, headers=auth(org, sandbox))
        assert response.status_code == 400 and "destination.datasetId" in response.json()["errors"][0]["path"]
        assert client.get("/export/jobs", params={"limit": 1}, headers=auth(org, sandbox)).json()["records"] == before


# ---------------------------------------------------------------- listing


def test_pages_followed_by_link_next_give_every_job_once_newest_first(client):
    # orgA/dev is this test's alone.
    created = [create(client, "orgA", "dev")["id"] for _ in range(120)]

    seen, url, pages = [], "/export/jobs?limit=7", 0
    while url:
        page = client.get(url, headers=auth("orgA", "dev")).json()
        assert page["page"]["pageSize"] == len(page["records"]) <= 7
        seen += [r["id"] for r in page["records"]]
        url, pages = page["link"].get("next"), pages + 1
    assert seen == sorted(created, reverse=True)
    assert pages == 18  # 17 full pages and one of 1


def test_status_filter(client):
    new, cancelled = create(client, "orgB"), create(client, "orgB")
    client.delete(f"/export/jobs/{cancelled['id']}", headers=auth("orgB"))

    for status, member, other in (("CANCELLED", cancelled, new), ("NEW", new, cancelled)):
        page = client.get("/export/jobs", params={"status": status, "limit": 1000}, headers=auth("orgB")).json()
        ids = {r["id"] for r in page["records"]}
        assert member["id"] in ids and other["id"] not in ids
        assert {r["status"] for r in page["records"]} == {status}


@pytest.mark.parametrize("query, named", [
    ("limit=0", "limit"), ("limit=5000", "limit"), ("limit=ten", "limit"),
    ("offset=yesterday", "offset"), ("offset=1_2_3", "offset"), ("offset=" + "9" * 5000 + "_1", "offset"),
    ("status=DONE", "status"), ("status=new", "status"),
])
def test_bad_query_parameters_are_400_naming_them(client, query, named):
    assert named in problem(client.get(f"/export/jobs?{query}", headers=auth()), 400)


def test_a_bad_job_id_is_400_naming_it(client):
    assert "id" in problem(client.get("/export/jobs/seven", headers=auth()), 400)


# ---------------------------------------------------------------- bad bodies


def changed(path: str, value) -> dict:
    """The seed body (without segmentation) with the value at a dot path replaced."""
    body = copy.deepcopy({k: v for k, v in SEED_BODY.items() if k != "evaluationInfo"})
    *parents, last = path.split(".")
    target: Any = body
    for key in parents:
        target = target[key]
    target[last] = value
    return body


@pytest.mark.parametrize("body, named", [
    (changed("destination.datasetId", 5), "destination.datasetId"),
    (changed("destination.segmentPerBatch", "false"), "destination.segmentPerBatch"),
    (changed("mergePolicy.version", "1"), "mergePolicy.version"),
    (changed("colour", "red"), "colour"),
    (changed("filter.segments", [{"segmentId": "s", "flavour": 1}]), "filter.segments[0].flavour"),
    (changed("filter.fromIngestTimestamp", "yesterday"), "filter.fromIngestTimestamp"),
    (changed("filter.segmentQualificationTime.endTime", "2018-02-01T00:00:00"),
     "filter.segmentQualificationTime.endTime"),
    (changed("filter.segments", [{"segmentId": "s", "status": ["gone"]}]), "filter.segments[0].status"),
    (changed("filter.segments", []), "filter.segments"),
    (changed("fields", "identities.id,person.age"), "fields"),
    (changed("destination.datasetId", "elsewhere"), "destination.datasetId"),
    ({"schema": {"name": "_xdm.context.profile"}}, "destination"),
])
def test_a_bad_body_is_400_naming_the_field(client, body, named):
    assert named in problem(client.post("/export/jobs", json=body, headers=auth()), 400)


@pytest.mark.parametrize("content, status", [
    (b"{not json", 400), (b"", 400), (b"[]", 400), (b'"a string"', 400), (b"\xff\xfe", 400),
    (b"[" * 500_000, 400),  # nested too deeply for a parser
    (b" " * (2 << 20), 413),
])
def test_a_body_that_is_no_json_object_is_refused(client, content, status):
    response = client.post("/export/jobs", content=content,
                           headers={**auth(), "Content-Type": "application/json"})
    assert list(problem(response, status)) == ["$"]


def test_a_huge_chunked_body_is_refused_while_it_streams(client):
    chunks = (b" " * 65536 for _ in range(32))  # 2 MiB without a Content-Length
    response = client.post("/export/jobs", content=chunks, headers=auth())
    assert list(problem(response, 413)) == ["$"]


def test_a_body_that_is_not_json_by_content_type_is_415(client):
    response = client.post("/export/jobs", content=b"destination=audience",
                           headers={**auth(), "Content-Type": "application/x-www-form-urlencoded"})
    assert list(problem(response, 415)) == ["Content-Type"]


def test_unknown_routes_and_methods_are_problems(client):
    problem(client.get("/export/nothing", headers=auth()), 404)
    response = client.put("/export/jobs/1", headers=auth())
    problem(response, 405)
    assert "allow" in response.headers


# ---------------------------------------------------------------- the server


def test_a_lake_error_is_422_and_the_hooks_run_at_start_and_stop(api_config, tmp_path):
    conf = tmp_path / "missing-table.toml"
    text = Path(api_config.base_dir, "export.toml").read_text()
    conf.write_text(text.replace('path = "profiles/profiles_1"', 'path = "profiles/nowhere"'))
    calls: list[str] = []
    server = make_server(load_config(conf), port=0, log_level="warning",
                         on_startup=lambda: calls.append("start"), on_shutdown=lambda: calls.append("stop"))
    with running(server) as url:
        assert calls == ["start"]
        response = httpx.post(f"{url}/export/jobs", json=MINIMAL_BODY, headers=auth())
        errors = problem(response, 422)
        assert "profiles_1" in response.json()["detail"] and list(errors) == ["$"]
    assert calls == ["start", "stop"]


class BrokenStore(JobStore):
    def get(self, *args, **kwargs):
        raise RuntimeError("the disk is on fire")


def test_an_unexpected_error_is_a_500_problem_document_without_its_insides(api_config):
    server = make_server(api_config, port=0, log_level="critical", store=BrokenStore(api_config.job_table_path))
    with running(server) as url:
        response = httpx.get(f"{url}/export/jobs/1", headers=auth())
    problem(response, 500)
    assert "fire" not in response.text


def test_schedules_can_be_created_listed_read_and_deleted(client):
    from tests.api.conftest import auth

    body = {"cron": "0 * * * *", "incremental": True,
            "job": {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}}
    created = client.post("/config/schedules", json=body, headers=auth())
    assert created.status_code == 200, created.text
    schedule = created.json()
    assert schedule["cron"] == "0 * * * *" and schedule["incremental"] is True
    assert client.get(f"/config/schedules/{schedule['id']}", headers=auth()).json() == schedule
    assert schedule["id"] in [s["id"] for s in client.get("/config/schedules", headers=auth()).json()["records"]]
    assert client.get(f"/config/schedules/{schedule['id']}", headers=auth("orgB")).status_code == 404
    bad = client.post("/config/schedules", json=dict(body, cron="61 * * * *"), headers=auth())
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "cron"
    assert client.delete(f"/config/schedules/{schedule['id']}", headers=auth()).status_code == 200
    assert client.delete(f"/config/schedules/{schedule['id']}", headers=auth()).status_code == 404


def test_an_aep_schedule_is_created_paused_and_resumed_by_its_tenant_only(client):
    body = {"name": "nightly", "type": "export", "schedule": "0 0 1 * * ?", "state": "active",
            "properties": {"job": MINIMAL_BODY, "incremental": True}}
    created = client.post("/config/schedules", json=body, headers=auth())
    assert created.status_code == 200, created.text
    schedule = created.json()
    assert (schedule["name"], schedule["type"], schedule["schedule"]) == ("nightly", "export", "0 0 1 * * ?")
    assert schedule["properties"]["incremental"] is True and schedule["state"] == "active"
    path = f"/config/schedules/{schedule['id']}"
    pause = [{"op": "replace", "path": "/state", "value": "inactive"}]
    problem(client.patch(path, json=pause, headers=auth("orgB")), 404)
    paused = client.patch(path, json=pause, headers=auth())
    assert paused.status_code == 200 and paused.json()["state"] == "inactive"
    errors = problem(client.patch(path, json=[{"op": "replace", "path": "/state", "value": "off"}], headers=auth()),
                     400)
    assert "[0].value" in errors
    resumed = client.patch(path, json=[{"op": "replace", "path": "/state", "value": "active"},
                                       {"op": "replace", "path": "/schedule", "value": "0 30 2 * * ?"}],
                           headers=auth()).json()
    assert (resumed["state"], resumed["schedule"], resumed["cron"]) == ("active", "0 30 2 * * ?", "30 2 * * ?")
    errors = problem(client.post("/config/schedules", json={**body, "schedule": "0 1 * * *"}, headers=auth()), 400)
    assert "6 or 7 fields" in errors["schedule"]
    client.delete(path, headers=auth())


def test_a_request_id_shaped_like_a_schedules_neither_joins_nor_moves_the_schedule(client, api_config):
    body = {"cron": "* * * * *", "incremental": True, "job": MINIMAL_BODY}
    schedule = client.post("/config/schedules", json=body, headers=auth()).json()
    schedules = ScheduleStore(api_config.schedule_table_path)
    schedules.advance_watermark(schedule["id"], "orgA", "prod", 1_700_000_000_000_000)  # as after a first run
    before = client.get(f"/config/schedules/{schedule['id']}", headers=auth()).json()
    assert before["watermark"] == "2023-11-14T22:13:20Z"

    hijack = f"schedule-{schedule['id']}-60000"
    response = client.post("/export/jobs", json=MINIMAL_BODY, headers={**auth(), "x-request-id": hijack})
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["requestId"] == hijack and "schedule" not in record
    assert "fromIngestTimestamp" not in record["filter"]

    # What a runner does with the job: it starts from no watermark and moves none when it succeeds.
    job = JobStore(api_config.job_table_path).get(record["id"])
    assert incremental_window(schedules, job) == job
    advance_watermark(schedules, job, 1_900_000_000_000_000)
    assert client.get(f"/config/schedules/{schedule['id']}", headers=auth()).json() == before

    # Nor can the body name a schedule.
    forged = dict(MINIMAL_BODY, schedule={"id": schedule["id"], "slot": 60000})
    assert problem(client.post("/export/jobs", json=forged, headers=auth()), 400) == {"schedule": "unknown key"}


def test_a_labelled_field_the_destination_may_not_receive_is_refused_at_its_path(client):
    private = {**MINIMAL_BODY, "destination": {"datasetId": PRIVATE_DESTINATION}}
    found = problem(client.post("/export/jobs", json={**private, "fields": "personalEmail.address"},
                                headers=auth("orgA", "prod")), 400)
    assert list(found) == ["fields"]
    assert "personalEmail is labelled C2" in found["fields"] and repr(PRIVATE_DESTINATION) in found["fields"]
    # Every attribute: created, without the labelled one, and the record says so.
    created = client.post("/export/jobs", json=private, headers=auth("orgA", "prod"))
    assert created.status_code == 200, created.text
    assert [(w["code"], w["path"]) for w in created.json()["warnings"]] == [("DATA_USAGE_OMITTED", "fields")]
    # Another destination, used for nothing a policy denies, receives it.
    allowed = {**MINIMAL_BODY, "fields": "personalEmail.address"}
    assert client.post("/export/jobs", json=allowed, headers=auth("orgA", "prod")).status_code == 200


def privacy_request(org: str = "orgA", users: int = 2) -> dict:
    return {"companyContexts": [{"namespace": "imsOrgID", "value": org}], "regulation": "gdpr",
            "users": [{"key": f"user-{n}", "action": ["access", "delete"],
                       "userIDs": [{"namespace": "email", "value": f"u{n}@example.com"}]} for n in range(users)]}


def test_privacy_requests_are_one_job_per_user_read_and_listed_by_their_tenant_only(client):
    created = client.post("/privacy/jobs", json=privacy_request(), headers=auth("orgA", "dev"))
    assert created.status_code == 200, created.text
    answer = created.json()
    assert answer["requestStatus"] == 1 and answer["totalRecords"] == 2
    assert [j["customer"]["user"] for j in answer["jobs"]] == [
        {"key": "user-0", "action": ["access", "delete"]}, {"key": "user-1", "action": ["access", "delete"]}]
    job_id = answer["jobs"][0]["jobId"]
    job = client.get(f"/privacy/jobs/{job_id}", headers=auth("orgA", "dev")).json()
    assert (job["jobId"], job["status"], job["regulation"], job["user"]["key"]) == (job_id, "processing", "gdpr",
                                                                                   "user-0")
    first = client.get("/privacy/jobs", params={"limit": 1}, headers=auth("orgA", "dev")).json()
    assert len(first["jobs"]) == 1 and first["link"]["next"].startswith("/privacy/jobs?limit=1&offset=")
    second = client.get(first["link"]["next"], headers=auth("orgA", "dev")).json()
    assert {j["jobId"] for j in first["jobs"] + second["jobs"]} == {j["jobId"] for j in answer["jobs"]}
    assert client.get("/privacy/jobs", params={"status": "complete"}, headers=auth("orgA", "dev")).json()["jobs"] == []
    # Another tenant: nothing of it, and no request in another org's name.
    assert client.get(f"/privacy/jobs/{job_id}", headers=auth("orgB")).status_code == 404
    assert client.get(f"/privacy/jobs/{job_id}", headers=auth("orgA", "prod")).status_code == 404
    assert client.get("/privacy/jobs", headers=auth("orgB")).json()["jobs"] == []
    refused = problem(client.post("/privacy/jobs", json=privacy_request("orgA"), headers=auth("orgB")), 400)
    assert list(refused) == ["companyContexts"] and "'orgB'" in refused["companyContexts"]


def test_a_bad_privacy_request_names_each_field(client):
    body = privacy_request()
    body["regulation"] = "hipaa"
    body["users"][0]["action"] = ["erase"]
    body["users"][1]["userIDs"] = []
    found = problem(client.post("/privacy/jobs", json=body, headers=auth()), 400)
    assert set(found) == {"regulation", "users[0].action[0]", "users[1].userIDs"}


def test_an_access_document_is_read_through_its_download_url_by_its_tenant_only(client, api_config, tmp_path):
    created = client.post("/privacy/jobs", json=privacy_request(users=1), headers=auth("orgA", "dev")).json()
    job_id = created["jobs"][0]["jobId"]
    missing = client.get(f"/privacy/jobs/{job_id}/document", headers=auth("orgA", "dev"))
    assert missing.status_code == 404 and "has no access document" in missing.text
    # What a runner leaves once it has written the document.
    store = PrivacyStore(api_config.privacy_table_path)
    document = tmp_path / f"{job_id}.json"
    document.write_text(json.dumps({"jobId": job_id, "events": {"events_0": [{"eventType": "web"}]}}))
    written = store.get(job_id).updated(access_document=str(document), download_url=f"/privacy/jobs/{job_id}/document")
    store._update({"record": f"'{written.to_json()}'"}, f"id = '{job_id}'")

    job = client.get(f"/privacy/jobs/{job_id}", headers=auth("orgA", "dev")).json()
    got = client.get(job["downloadURL"], headers=auth("orgA", "dev"))
    assert got.status_code == 200 and got.json()["events"] == {"events_0": [{"eventType": "web"}]}
    assert client.get(job["downloadURL"], headers=auth("orgB")).status_code == 404
    document.unlink()
    gone = client.get(job["downloadURL"], headers=auth("orgA", "dev"))
    assert gone.status_code == 404 and "was removed" in gone.text


# ---------------------------------------------------------------- previews and estimates (no runner here)


def test_a_preview_is_created_new_and_read_as_a_page_and_an_estimate_by_its_tenant_only(client):
    response = client.post("/preview", json={"predicateExpression": 'person.name.firstName = "Ada"',
                                             "predicateType": "pql/text", "predicateModel": "_xdm.context.profile",
                                             "graphType": "none"}, headers=auth())
    assert response.status_code == 200
    created = response.json()
    assert created["state"] == "NEW" and created["graphType"] == "none"
    assert created["mergeStrategy"] == "timestampOrdered-none-mp"
    preview_id = created["previewId"]

    page = client.get(f"/preview/{preview_id}", headers=auth()).json()
    assert page == {"previewId": preview_id, "state": "NEW", "results": [], "links": {}}
    estimate = client.get(f"/estimate/{preview_id}", headers=auth()).json()
    assert estimate == {"previewId": preview_id, "state": "NEW", "_links": {"preview": f"/preview/{preview_id}"}}
    for org, sandbox in (("orgB", "prod"), ("orgA", "dev")):
        for path in (f"/preview/{preview_id}", f"/estimate/{preview_id}"):
            problem(client.get(path, headers=auth(org, sandbox)), 404)
        problem(client.delete(f"/preview/{preview_id}", headers=auth(org, sandbox)), 404)

    assert client.delete(f"/preview/{preview_id}", headers=auth()).json()["status"] is True
    problem(client.get(f"/preview/{preview_id}", headers=auth()), 404)


@pytest.mark.parametrize(("body", "named", "said"), [
    ({"predicateExpression": "person.name.nickname = 1"}, "predicateExpression", "position"),
    ({"predicateExpression": 'person.name.firstName = "Ada" and'}, "predicateExpression", "position"),
    ({"predicateExpression": "true", "predicateType": "pql/json"}, "predicateType", "pql/text"),
    ({"predicateExpression": "true", "predicateModel": "_xdm.context.experienceevent"}, "predicateModel", ""),
    ({"predicateExpression": "true", "mergeStrategy": "nope"}, "mergeStrategy", "unknown merge policy"),
    ({"predicateExpression": "true", "mergeStrategy": "timestampOrdered-none-mp", "graphType": "pdg"},
     "graphType", "identityGraph"),
    ({"predicateExpression": 'inSegment("missing")'}, "predicateExpression", "missing"),
    ({"predicate": "true"}, "predicate", ""),
])
def test_a_bad_preview_is_400_naming_the_field(client, body, named, said):
    errors = problem(client.post("/preview", json=body, headers=auth()), 400)
    assert named in errors and said in errors[named]


# ---------------------------------------------------------------- segment jobs (no runner here)


def define_segment(client: httpx.Client, value: str, org: str = "orgA", sandbox: str = "dev") -> str:
    body = {"name": value, "expression": {"type": "PQL", "format": "pql/text", "value": value},
            "schema": {"name": "_xdm.context.profile"}}
    response = client.post("/segment/definitions", json=body, headers=auth(org, sandbox))
    assert response.status_code == 200, response.text
    return response.json()["id"]


def test_segment_jobs_are_created_listed_read_and_cancelled_apart_from_export_jobs(client):
    dev = auth("orgA", "dev")
    first = define_segment(client, 'person.name.firstName = "Ada"')
    second = define_segment(client, "personalEmail.address.isNotNull()")
    response = client.post("/segment/jobs", json=[{"segmentId": first}, {"segmentId": second}], headers=dev)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "QUEUED" and [s["segmentId"] for s in job["segments"]] == [first, second]
    assert job["segments"][0]["segment"]["expression"]["value"] == 'person.name.firstName = "Ada"'
    assert job["metrics"] == {"totalTime": {"startTimeInMs": job["creationTime"]}}
    everything = client.post("/segment/jobs", json=["*"], headers=dev).json()
    assert {s["segmentId"] for s in everything["segments"]} >= {first, second}

    assert client.get(f"/segment/jobs/{job['id']}", headers=dev).json() == job
    listed = client.get("/segment/jobs", params={"limit": 1, "status": "QUEUED"}, headers=dev).json()
    assert [j["id"] for j in listed["children"]] == [everything["id"]] and listed["_links"]["next"]["href"]
    following = client.get(listed["_links"]["next"]["href"], headers=dev).json()
    assert following["children"][0]["id"] == job["id"]
    bulk = client.post("/segment/jobs/bulk-get", json={"ids": [{"id": job["id"]}, {"id": "999999"}]},
                       headers=dev).json()
    assert bulk == {"results": {job["id"]: job}, "notFound": ["999999"]}

    # Export jobs and segment jobs share the job table, not their routes.
    problem(client.get(f"/export/jobs/{job['id']}", headers=dev), 404)
    exports = client.get("/export/jobs", params={"limit": 1000}, headers=dev).json()["records"]
    assert job["id"] not in {str(r["id"]) for r in exports}
    for org, sandbox in (("orgA", "prod"), ("orgB", "prod")):
        problem(client.get(f"/segment/jobs/{job['id']}", headers=auth(org, sandbox)), 404)

    cancelled = client.delete(f"/segment/jobs/{job['id']}", headers=dev).json()
    assert cancelled["status"] is True
    assert client.get(f"/segment/jobs/{job['id']}", headers=dev).json()["status"] == "CANCELLED"
    problem(client.delete(f"/segment/jobs/{job['id']}", headers=dev), 409)
    client.delete(f"/segment/jobs/{everything['id']}", headers=dev)


@pytest.mark.parametrize(("body", "named", "said"), [
    ([], "$", "JSON array"),
    ({"segmentId": "x"}, "$", "JSON array"),
    ([{"segmentId": "nope"}], "[0].segmentId", "no segment definition 'nope'"),
    ([{"segmentId": ""}], "[0].segmentId", ""),
    ([{"segment": "x"}], "[0].segment", ""),
    (["*", {"segmentId": "x"}], "[0]", "stands alone"),
    ([7], "[0]", "not an object"),
])
def test_a_bad_segment_job_is_400_naming_the_item(client, body, named, said):
    errors = problem(client.post("/segment/jobs", json=body, headers=auth("orgA", "dev")), 400)
    assert named in errors and said in errors[named]


def test_a_segment_job_needs_a_segmentation_dataset_and_one_merge_policy(client):
    prod = define_segment(client, 'person.name.firstName = "Bo"', sandbox="prod")
    errors = problem(client.post("/segment/jobs", json=[{"segmentId": prod}], headers=auth()), 400)
    assert "segmentationDataset" in errors["$"]
    body = {"name": "other policy", "mergePolicyId": "dataSetPrecedence-mp", "schema": {"name": "_xdm.context.profile"},
            "expression": {"type": "PQL", "format": "pql/text", "value": "personalEmail.address.isNull()"}}
    other = client.post("/segment/definitions", json=body, headers=auth("orgA", "dev")).json()["id"]
    plain = define_segment(client, 'person.name.firstName = "Cy"')
    errors = problem(client.post("/segment/jobs", json=[{"segmentId": plain}, {"segmentId": other}],
                                 headers=auth("orgA", "dev")), 400)
    assert "one segment job per policy" in errors["$"] and other in errors["$"]


def test_webhook_deliveries_are_listed_by_their_tenant_only(client, api_config):
    def row(event: str, org: str, status: str, created: int) -> dict[str, Any]:
        return {"eventId": event, "endpoint": "crm", "imsOrgId": org, "sandboxName": "prod",
                "eventType": "job.failed", "payload": "{}", "status": status, "attempts": 1, "lastError": None,
                "lastStatusCode": 200, "createdAt": created, "updatedAt": created, "nextAttemptAt": None,
                "claimedBy": None, "claimedUntil": None}

    DeliveryStore(api_config.webhook_table_path).add([row("e1", "orgA", "DELIVERED", 1), row("e2", "orgA", "FAILED", 2),
                                                      row("e3", "orgB", "FAILED", 3)])
    listed = client.get("/webhooks/deliveries", headers=auth("orgA", "prod"))
    assert listed.status_code == 200, listed.text
    assert [d["eventId"] for d in listed.json()["deliveries"]] == ["e2", "e1"]
    failed = client.get("/webhooks/deliveries?status=FAILED", headers=auth("orgB", "prod")).json()["deliveries"]
    assert [(d["eventId"], d["status"]) for d in failed] == [("e3", "FAILED")]
    assert client.get("/webhooks/deliveries?status=LOST", headers=auth("orgA", "prod")).status_code == 400
    assert client.get("/webhooks/deliveries", headers=auth("orgA", "dev")).json() == {"deliveries": []}
