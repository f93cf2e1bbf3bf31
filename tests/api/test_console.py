"""The console's page and the routes it adds to the API: an expression checked, a schedule's next runs (no browser:
tests/browser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api.conftest import auth


def check(client, value: str, **extra) -> dict:
    body = {"expression": {"type": "PQL", "format": "pql/text", "value": value}, **extra}
    response = client.post("/segment/definitions/validate", json=body, headers=auth())
    assert response.status_code == 200, response.text
    return response.json()


def test_a_valid_expression_has_no_problems_and_nothing_is_stored(client):
    before = client.get("/segment/definitions", headers=auth()).json()["segments"]
    assert check(client, 'personalEmail.address = "a@example.com"') == {"valid": True, "errors": []}
    assert client.get("/segment/definitions", headers=auth()).json()["segments"] == before


def test_a_problem_is_at_its_line_and_column(client):
    found = check(client, 'personalEmail.address = "a"\nand person.name.nickName = "b"')
    assert found["valid"] is False
    [problem] = found["errors"]
    assert (problem["path"], problem["line"], problem["column"]) == ("expression.value", 2, 5)
    assert problem["offset"] == 32 and problem["length"] == len("person.name.nickName")
    assert "nickName" in problem["message"]

    [syntax] = check(client, 'personalEmail.address = = "a"')["errors"]
    assert (syntax["line"], syntax["column"]) == (1, 25) and "syntax error" in syntax["message"]


def test_a_definition_may_not_name_itself(client):
    body = {"name": "self", "schema": {"name": "_xdm.context.profile"},
            "expression": {"type": "PQL", "format": "pql/text", "value": "personalEmail.address.isNull()"}}
    created = client.post("/segment/definitions", json=body, headers=auth()).json()
    [problem] = check(client, f'inSegment("{created["id"]}")', id=created["id"])["errors"]
    assert (problem["line"], problem["column"]) == (1, 1) and "cycle" in problem["message"]


def test_a_bad_body_or_merge_policy_is_a_400_naming_the_field(client):
    response = client.post("/segment/definitions/validate", json={"expression": {"value": "x"}}, headers=auth())
    assert response.status_code == 400
    assert {e["path"] for e in response.json()["errors"]} == {"expression.type", "expression.format"}
    response = client.post("/segment/definitions/validate", headers=auth(), json={
        "expression": {"type": "PQL", "format": "pql/text", "value": "true"}, "mergePolicyId": "nope"})
    assert response.status_code == 400 and response.json()["errors"][0]["path"] == "mergePolicyId"
    wrong_token = auth("orgA", "prod", "wrong")
    assert client.post("/segment/definitions/validate", json={}, headers=wrong_token).status_code == 401


def test_the_console_is_served_with_headers_that_keep_other_sites_out(client):
    page = client.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/console/console.js" in page.text and "<script>" not in page.text  # no inline script
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
    script = client.get("/console/console.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text
    assert client.get("/console/console.css").headers["content-type"].startswith("text/css")
    assert client.get("/console/", follow_redirects=False).headers["location"] == "/console"
    assert client.get("/console/export.toml").status_code == 404


def test_the_console_is_not_in_the_openapi_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]
    assert "/segment/definitions/validate" in paths


def test_an_active_schedule_answers_its_next_runs_and_a_paused_one_none(client):
    job = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
    body = {"name": "every quarter hour", "type": "export", "schedule": "0 */15 * * * ?", "properties": {"job": job}}
    schedule = client.post("/config/schedules", json=body, headers=auth()).json()
    path = f"/config/schedules/{schedule['id']}/next-runs"
    runs = client.get(path, params={"count": 2}, headers=auth()).json()
    assert runs["state"] == "active" and len(runs["nextRuns"]) == 2
    first, second = (datetime.fromisoformat(run) for run in runs["nextRuns"])
    assert first.minute % 15 == 0 and second - first == timedelta(minutes=15)
    assert first - datetime.now(UTC) <= timedelta(minutes=15)
    client.patch(f"/config/schedules/{schedule['id']}", json=[{"op": "replace", "path": "/state", "value": "inactive"}],
                 headers=auth())
    assert client.get(path, headers=auth()).json() == {"id": schedule["id"], "state": "inactive", "nextRuns": []}
    assert client.get(path, headers=auth("orgB")).status_code == 404
    assert client.get(path, params={"count": 0}, headers=auth()).json()["errors"][0]["path"] == "count"
