"""The web console in a real browser (docs/reference/console.md): sign-in, jobs updating by themselves,
a job's page and its cancel, the PQL editor's marker, escaping, tenancy; a screenshot of each page."""

from __future__ import annotations

import pytest

from jobs.control import JobStore
from jobs.spec import JobError, JobStatus, TimeSpan
from tests.browser.conftest import TENANTS, auth

pytestmark = pytest.mark.browser

JOB = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
# One batch per segment, so that the record counts rows per segment.
PER_SEGMENT = {**JOB, "destination": {"datasetId": "audience", "segmentPerBatch": True},
               "filter": {"segments": [{"segmentId": "gold"}, {"segmentId": "silver"}]}}
PQL = {"type": "PQL", "format": "pql/text"}
HOSTILE_NAME = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


def create_job(api, org: str = "orgA", body: dict = JOB) -> int:
    response = api.post("/export/jobs", json=body, headers=auth(org))
    assert response.status_code == 200, response.text
    return response.json()["id"]


def create_segment(api, name: str, value: str = "personalEmail.address.isNotNull()", org: str = "orgA") -> dict:
    body = {"name": name, "expression": {**PQL, "value": value}, "schema": {"name": "_xdm.context.profile"}}
    response = api.post("/segment/definitions", json=body, headers=auth(org))
    assert response.status_code == 200, response.text
    return response.json()


def advance(config, job_id: int, status: JobStatus, **changes) -> None:
    """What a runner writes: the job moved on from the status it is in."""
    store = JobStore(config.job_table_path)
    record = store.get(job_id)
    store.replace(record.updated(status=status, **changes), expected=[record.status])


def badge_of(console, job_id: int) -> str:
    rows = console.find_all(f'tr[data-job="{job_id}"] .badge')
    return rows[0].text if rows else ""


def test_signing_in_keeps_the_token_out_of_the_url_and_a_wrong_one_is_refused(console):
    console.sign_in(token="not-a-token")
    assert "not valid" in console.wait_for("#sign-in-error", "not valid").text
    assert console.driver.execute_script("return sessionStorage.length") == 0
    console.screenshot("sign-in")

    console.sign_in()
    console.wait_for("#nav a.active", "Jobs")
    assert console.find("#who").text == "orgA / prod"
    assert TENANTS["orgA"][0] not in console.driver.current_url
    assert console.driver.get_cookies() == []


def test_a_job_appears_runs_and_succeeds_while_the_list_watches(console, api, console_config):
    console.sign_in()
    console.wait_for("#jobs table, #jobs .empty")
    console.driver.execute_script("window.sameDocument = true")  # gone if the page reloads
    job_id = create_job(api, body=PER_SEGMENT)
    console.wait_for(f'tr[data-job="{job_id}"] .badge', "NEW")

    started = JobStore(console_config.job_table_path).get(job_id).creation_time + 40
    advance(console_config, job_id, JobStatus.PROCESSING, stage="exporting: 3/8 tasks")
    console.wait_for(f'tr[data-job="{job_id}"] td[data-label="Stage"]', "exporting: 3/8 tasks")
    record = JobStore(console_config.job_table_path).get(job_id)
    metrics = record.metrics.updated(
        total_time=TimeSpan(start_time_in_ms=started).finish(started + 5200),
        profile_export_time=TimeSpan(start_time_in_ms=started + 900).finish(started + 5000),
        total_exported_profile_counter=1250,
        exported_profile_by_namespace_counter={"email": 1100, "crmId": 640, "phone": 95},
        exported_profile_by_segment_counter={"ups": {"gold": 900, "silver": 410}},
    )
    advance(console_config, job_id, JobStatus.SUCCEEDED, stage=None, metrics=metrics)
    console.until(lambda: badge_of(console, job_id) == "SUCCEEDED", "the list did not show SUCCEEDED")
    assert console.driver.execute_script("return window.sameDocument") is True
    console.screenshot("jobs")

    console.find(f'tr[data-job="{job_id}"] a').click()
    console.wait_for("#job-status", "SUCCEEDED")
    timeline = console.wait_for("#timeline").text
    assert "Created" in timeline and "Claimed by a runner" in timeline and "Finished: SUCCEEDED" in timeline
    assert "Read, merged, filtered and wrote" in timeline and "4.1 s" in timeline
    chart = console.wait_for("#chart-namespaces")
    assert [label.text for label in chart.find_elements("css selector", ".chart-label")] == ["email", "crmId", "phone"]
    segments = console.find("#chart-segments")
    assert [label.text for label in segments.find_elements("css selector", ".chart-value")] == ["900", "410"]
    assert "UNKNOWN_SEGMENT" in console.find("#page").text  # the warnings of its creation
    assert '"totalExportedProfileCounter": 1250' in console.find("#job-record").text
    assert console.find_all("#cancel") == []  # a finished job cannot be cancelled
    console.screenshot("job")


def test_a_failed_job_shows_its_error_and_what_to_do(console, api, console_config):
    job_id = create_job(api)
    advance(console_config, job_id, JobStatus.PROCESSING)
    advance(console_config, job_id, JobStatus.FAILED, errors=[JobError(
        code="INVALID_LAKE", msg="profile dataset 'crm' has no Delta table at lakeRoot/profiles/profiles_0")])
    console.sign_in()
    console.open(f"#/jobs/{job_id}")
    errors = console.wait_for("#job-errors", "INVALID_LAKE").text
    assert "has no Delta table" in errors and "What to do: Fix the config's dataset paths" in errors
    console.screenshot("job-failed")


def test_a_new_job_is_cancelled_from_its_page(console, api):
    job_id = create_job(api)
    console.sign_in()
    console.open(f"#/jobs/{job_id}")
    console.wait_for("#job-status", "NEW")
    console.wait_for("#cancel").click()
    assert "marked for cancelling" in console.wait_for("#cancel-message", "cancelling").text
    console.wait_for("#job-status", "CANCELLED")
    assert console.find_all("#cancel") == []
    assert api.get(f"/export/jobs/{job_id}", headers=auth()).json()["status"] == "CANCELLED"


def test_the_pql_editor_marks_an_error_at_its_line_and_column(console):
    console.sign_in()
    console.open("#/segments/new")
    console.type("#segment-name", "gold with a typo")
    console.type("#pql", 'personalEmail.address.isNotNull()\nand person.name.nickName = "Al"')
    position = console.wait_for("#pql-position")
    assert position.text == "Line 2, column 5"
    assert console.find("#pql-marker mark").text == "person.name.nickName"
    assert "nickName" in console.find("#pql-error").text
    console.screenshot("segment-error")

    console.type("#pql", 'person.name.firstName = "Al"')
    console.wait_for("#pql-verdict .ok", "valid")
    console.find("#save-segment").click()
    console.wait_for("#save-message", "Saved")
    assert console.wait_for("#segment-title").text == "gold with a typo"
    # This server computes no previews (as `serve --no-runner`): the estimate is asked for and waits.
    console.wait_for("#estimate-segment").click()
    assert "waiting for the server's preview worker" in console.wait_for("#estimate", "Estimate new").text


def test_a_segment_named_like_markup_shows_as_text(console, api):
    segment = create_segment(api, HOSTILE_NAME)
    console.sign_in()
    console.open("#/segments")
    link = console.wait_for(f'tr[data-segment="{segment["id"]}"] .segment-name')
    assert link.text == HOSTILE_NAME
    console.screenshot("segments")
    link.click()
    assert console.wait_for("#segment-title").text == HOSTILE_NAME
    assert console.find("#segment-name").get_attribute("value") == HOSTILE_NAME
    assert console.driver.execute_script("return window.pwned") is None
    assert console.find_all("#page script, #page img") == []


def test_schedules_are_paused_and_resumed_and_privacy_requests_listed(console, api):
    body = {"name": "nightly", "type": "export", "schedule": "0 0 1 * * ?", "state": "active",
            "properties": {"job": JOB, "incremental": True}}
    schedule = api.post("/config/schedules", json=body, headers=auth()).json()
    request = {"companyContexts": [{"namespace": "imsOrgID", "value": "orgA"}], "regulation": "gdpr",
               "users": [{"key": "user-1", "action": ["access"],
                          "userIDs": [{"namespace": "email", "value": "u1@example.com"}]}]}
    assert api.post("/privacy/jobs", json=request, headers=auth()).status_code == 200
    console.sign_in()
    console.open("#/schedules")
    row = f'tr[data-schedule="{schedule["id"]}"]'
    assert console.wait_for(f'{row} td[data-label="Next run"]').text.endswith(" 01:00:00Z")  # 1 a.m. UTC, daily
    console.screenshot("schedules")
    console.wait_for(f"{row} .toggle", "Pause").click()
    console.wait_for(f'{row} td[data-label="State"]', "inactive")
    assert console.find(f'{row} td[data-label="Next run"]').text == "—"
    console.wait_for(f"{row} .toggle", "Resume").click()
    console.wait_for(f'{row} td[data-label="State"]', "active")
    assert api.get(f"/config/schedules/{schedule['id']}", headers=auth()).json()["state"] == "active"

    console.open("#/privacy")
    assert "user-1" in console.wait_for("#page table", "gdpr").text
    console.screenshot("privacy")


def test_another_tenant_sees_none_of_it(console, api):
    job_id = create_job(api)
    segment = create_segment(api, "orgA only")
    console.sign_in("orgB")
    console.wait_for("#who", "orgB")
    console.wait_for("#jobs table, #jobs .empty")
    assert console.find_all(f'tr[data-job="{job_id}"]') == []
    assert all(row.get_attribute("data-job") != str(job_id) for row in console.find_all("tr[data-job]"))
    console.open("#/segments")
    console.wait_for("#page .empty, #page table")
    assert console.find_all(f'tr[data-segment="{segment["id"]}"]') == []
    assert "orgA only" not in console.find("#page").text
    console.open(f"#/jobs/{job_id}")
    console.wait_for("#page .error", f"no export job {job_id}")
    assert console.find_all("#job-record") == []
    console.open(f"#/segments/{segment['id']}")
    console.wait_for("#page .error", segment["id"])
    assert "orgA only" not in console.find("#page").text


@pytest.mark.parametrize("route", ["#/jobs", "#/segments", "#/schedules", "#/privacy"])
def test_each_page_fits_a_phone_without_sideways_scrolling(console, route):
    console.sign_in()
    console.driver.set_window_size(390, 844)
    console.open(route)
    console.wait_for("#page h1")
    console.wait_for("#page table, #page .empty")
    width = console.driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    # Nothing the page does is refused by its own Content-Security-Policy (no inline script or style).
    logged = [entry["message"] for entry in console.driver.get_log("browser")]
    refused = [message for message in logged if "Content Security Policy" in message]
    assert refused == []
