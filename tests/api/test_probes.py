"""Kubernetes' probes: /healthz while the server answers, /readyz once the tables read and the runner is up."""

from __future__ import annotations

from fastapi.testclient import TestClient

from jobs.shells.http import create_app


def test_liveness_needs_no_token(client):
    answer = client.get("/healthz")
    assert (answer.status_code, answer.json()) == (200, {"status": "alive"})


def test_ready_without_a_runner_once_the_tables_read(client):
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "checks": {
        "jobTable": "ok", "scheduleTable": "ok", "segmentTable": "ok", "runner": "none (serve --no-runner)"}}


def test_not_ready_until_the_runner_is_up(api_config):
    up = [False]
    with TestClient(create_app(api_config, runner_ready=lambda: up[0])) as http:
        waiting = http.get("/readyz")
        up[0] = True
        ready = http.get("/readyz")
    assert (waiting.status_code, waiting.json()["checks"]["runner"]) == (503, "not ready")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")


def test_not_ready_when_a_table_cannot_be_read(api_config, tmp_path):
    broken = tmp_path / "jobs"
    (broken / "_delta_log").mkdir(parents=True)
    (broken / "_delta_log" / "00000000000000000000.json").write_text("not a Delta log\n")
    config = api_config.model_copy(update={"job_table": str(broken)})
    with TestClient(create_app(config)) as http:
        answer = http.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["jobTable"] == "unreadable" and str(tmp_path) not in answer.text
