"""One error hierarchy (jobs.spec.errors): each error says its code, HTTP status and CLI exit code, and the
CLI and the HTTP API answer the same error with the same problem document."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

import jobs.control
import jobs.engine
import jobs.shells.http
from jobs.control import JobStore, StatusConflict
from jobs.shells.cli import main
from jobs.shells.http.errors import ApiProblem
from jobs.spec import (
    EXIT_CONFIG,
    EXIT_CONFLICT,
    EXIT_FAILED,
    EXIT_LAKE,
    EXIT_NOT_FOUND,
    EXIT_REJECTED,
    EXIT_USAGE,
    ConfigError,
    Conflict,
    ExportJobsError,
    JobFailure,
    LakeError,
    NotFound,
    RequestRejected,
    UsageError,
)
from jobs.spec.pql import PqlError
from sample_lake import sample_config, token_sha256

TOKEN = "unit-token"


def _subclasses(cls: type[ExportJobsError]) -> list[type[ExportJobsError]]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


# Each kind of failure has its own exit code; every error is one of these kinds.
EXIT_CODES = {RequestRejected: EXIT_REJECTED, NotFound: EXIT_NOT_FOUND, Conflict: EXIT_CONFLICT, LakeError: EXIT_LAKE,
              ConfigError: EXIT_CONFIG, UsageError: EXIT_USAGE, JobFailure: EXIT_FAILED,
              ApiProblem: EXIT_REJECTED, PqlError: EXIT_REJECTED}


def test_every_error_names_its_code_status_and_exit_code():
    assert jobs.control and jobs.engine and jobs.shells.http  # every layer's errors are defined
    errors = _subclasses(ExportJobsError)
    assert len(errors) >= 12
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES) - 2  # HTTP-only and PQL refusals are rejected requests
    for error in errors:
        assert error.code.isupper(), error
        assert 400 <= error.http_status < 600, error
        [kind] = [k for k in EXIT_CODES if issubclass(error, k)]
        assert error.exit_code == EXIT_CODES[kind], error


def test_a_rejected_request_locates_its_problems_inside_another_value():
    rejected = RequestRejected.at("filter.segments", "must list at least one segment")
    assert [(p.path, p.message) for p in rejected.under("job").problems] == [
        ("job.filter.segments", "must list at least one segment")]


def test_a_lake_error_is_a_422_that_names_the_whole_request():
    document = LakeError("profile dataset 'p' has no Delta table at /x").document()
    assert document["status"] == 422 and document["errors"] == [
        {"path": "$", "message": "profile dataset 'p' has no Delta table at /x"}]


def test_status_conflict_says_what_it_means_for_the_caller():
    assert str(StatusConflict(3, "SUCCEEDED", [], "it cannot be cancelled any more")).endswith(
        "it cannot be cancelled any more")


@pytest.fixture
def deployment(config, tmp_path):
    """The unit config's lake, with a tenant that holds its default org and sandbox."""
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path, tenants=[(config.default_org, [config.default_sandbox],
                                                      token_sha256(TOKEN))]))
    return conf


def _cli(conf, capsys, *args: str) -> tuple[int, dict]:
    code = main(["--conf", str(conf), *args])
    return code, json.loads(capsys.readouterr().out)


def _http(conf, method: str, path: str, **kwargs) -> tuple[int, dict]:
    from jobs.spec import load_config

    config = load_config(conf)
    headers = {"Authorization": f"Bearer {TOKEN}", "x-api-key": "k", "x-gw-ims-org-id": config.default_org,
               "x-sandbox-name": config.default_sandbox}
    with TestClient(jobs.shells.http.create_app(config)) as client:
        response = client.request(method, path, headers=headers, **kwargs)
    return response.status_code, response.json()


@pytest.mark.parametrize("cli, http", [
    (("get", "41"), ("GET", "/export/jobs/41")),
    (("segment", "get", "no-such-id"), ("GET", "/segment/definitions/no-such-id")),
    (("schedule", "delete", "no-such-id"), ("DELETE", "/config/schedules/no-such-id")),
    (("list", "--offset", "1_x"), ("GET", "/export/jobs?offset=1_x")),
])
def test_the_cli_and_the_api_answer_an_error_alike(deployment, capsys, cli, http):
    code, printed = _cli(deployment, capsys, *cli)
    status, answered = _http(deployment, *http)
    assert code == {400: EXIT_REJECTED, 404: EXIT_NOT_FOUND}[status]
    assert printed["status"] == status == answered["status"]
    assert printed["title"] == answered["title"]
    assert [e["path"] for e in printed["errors"]] == [e["path"] for e in answered["errors"]]


def test_a_finished_job_cannot_be_cancelled_from_either_shell(deployment, config, capsys):
    body = {"destination": {"datasetId": config.destination_datasets[0].id},
            "schema": {"name": config.destination_datasets[0].schema_name}}
    created = jobs.control.create_job(JobStore(config.job_table_path), config, body, config.default_org,
                                      config.default_sandbox)
    store = JobStore(config.job_table_path)
    store.replace(created.updated(status="CANCELLED"), [created.status])

    code, printed = _cli(deployment, capsys, "cancel", str(created.id))
    status, answered = _http(deployment, "DELETE", f"/export/jobs/{created.id}")
    assert (code, printed["status"], status) == (EXIT_CONFLICT, 409, 409)
    assert printed["detail"] == answered["detail"] and "cannot be cancelled" in answered["detail"]


def test_a_missing_definition_file_is_a_rejected_request_naming_it(deployment, capsys, tmp_path):
    code, printed = _cli(deployment, capsys, "create", str(tmp_path / "missing.json"))
    assert code == EXIT_REJECTED and printed["errors"][0]["path"] == "file"


def test_a_failed_jobs_error_keeps_the_servers_internals_to_its_log():
    from jobs.control.failures import job_error

    try:
        raise RuntimeError("[PATH_NOT_FOUND] Path does not exist: file:/srv/lake/profiles/gone.")
    except RuntimeError as err:
        error = job_error(err, "/srv/lake/")
    assert error.msg == "RuntimeError: [PATH_NOT_FOUND] Path does not exist: file:lakeRoot/profiles/gone."
    assert error.call_stack == "builtins.RuntimeError"  # no frames, no file paths
