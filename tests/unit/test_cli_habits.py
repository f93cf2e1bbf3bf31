"""What a user of any CLI expects of ours: --version, options before or after the command, the config
found where they would put it, EXPORT_JOBS_* overrides and `config show`, exit codes by kind, and the
Delta jars fetched whole or not at all."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import jobs.shells.cli as cli
from jobs.control import JobStore, create_job
from jobs.engine import delta_coordinates, fetch_jars, jar_file_name
from jobs.engine.jars import jar_settings
from jobs.spec import (
    EXIT_CONFIG,
    EXIT_CONFLICT,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_NOT_FOUND,
    EXIT_REJECTED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    ConfigError,
    JobInputs,
    JobStatus,
    RequestRejected,
    find_config,
    load_config,
    parse_definition,
    shown_settings,
)
from sample_lake import sample_config, token_sha256


@pytest.fixture
def conf(config):
    return Path(config.base_dir) / "export.toml"


def test_version_names_the_package_and_its_engine(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("export-jobs 0.1.0 (pyspark 4.2.0, delta-spark 4.4.0)")


@pytest.mark.parametrize("argv", [
    ["--conf", "{conf}", "get", "41"],
    ["get", "41", "--conf", "{conf}"],
    ["get", "--conf", "{conf}", "41"],
])
def test_global_options_come_before_or_after_the_command(conf, capsys, argv):
    code = cli.main([a.format(conf=conf) for a in argv])
    assert code == EXIT_NOT_FOUND
    assert json.loads(capsys.readouterr().out)["status"] == 404


def test_an_option_given_before_the_command_is_kept(conf, config, capsys):
    assert cli.main(["--conf", str(conf), "--org", "nobody@Org", "list"]) == EXIT_USAGE
    assert cli.main(["--conf", str(conf), "list", "--org", config.default_org]) == 0
    capsys.readouterr()


def test_an_org_or_sandbox_no_tenant_has_is_a_usage_error(conf, config, capsys, caplog):
    assert cli.main(["--conf", str(conf), "--sandbox", "no-such-sandbox", "list"]) == EXIT_USAGE
    assert capsys.readouterr().out == ""
    assert "'no-such-sandbox' is not a tenant of this deployment" in caplog.text
    assert f"{config.default_org}/{config.default_sandbox}" in caplog.text


def test_a_missing_config_exits_with_its_own_code(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    monkeypatch.delenv("EXPORT_JOBS_CONF", raising=False)
    assert cli.main(["list"]) == EXIT_CONFIG
    assert "conf/export.toml does not exist (pass --conf PATH or set EXPORT_JOBS_CONF)" in caplog.text


def test_a_bug_of_ours_exits_70_with_its_traceback_in_the_log(conf, monkeypatch, caplog):
    def broken(call):
        raise KeyError("oops")

    monkeypatch.setitem(cli.COMMANDS, "list", broken)
    assert cli.main(["--conf", str(conf), "list"]) == EXIT_INTERNAL
    # The log's format (text or JSON) is another test's choice: look for its parts.
    assert all(part in caplog.text for part in ("internal error", "KeyError", "oops", "broken"))


def test_the_config_is_looked_up_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    user = tmp_path / "config-home" / "export-jobs" / "export.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    assert find_config(None, {}) == (Path("conf/export.toml"), "./conf/export.toml")  # nothing anywhere: named
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert find_config(None, {}) == (user, "the user's config file")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "export.toml").write_text("")
    assert find_config(None, {}) == (Path("conf/export.toml"), "./conf/export.toml")
    assert find_config(None, {"EXPORT_JOBS_CONF": "/etc/x.toml"}) == (Path("/etc/x.toml"), "EXPORT_JOBS_CONF")
    assert find_config("mine.toml", {"EXPORT_JOBS_CONF": "/etc/x.toml"}) == (Path("mine.toml"), "--conf")


def test_environment_overrides_win_over_the_file(conf, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(conf, {"EXPORT_JOBS_LAKE_ROOT": "elsewhere", "EXPORT_JOBS_SPARK_MASTER": "local[1]",
                                "EXPORT_JOBS_DELTA_JARS": "provided"})
    assert config.lake_root == str(tmp_path / "elsewhere")  # relative to where the command runs
    assert config.spark_conf()[0] == "local[1]"
    assert config.delta_jars == "provided"
    assert config.origins == {"lakeRoot": "EXPORT_JOBS_LAKE_ROOT", "spark.master": "EXPORT_JOBS_SPARK_MASTER",
                              "deltaJars": "EXPORT_JOBS_DELTA_JARS"}
    with pytest.raises(ConfigError, match="deltaJars: Input should be 'folder', 'packages' or 'provided'"):
        load_config(conf, {"EXPORT_JOBS_DELTA_JARS": "maven"})


def test_config_show_says_where_each_setting_came_from_and_masks_secrets(tmp_path):
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path, tenants=[("o@Org", ["prod"], token_sha256("t"))]).replace(
        "[spark]\n", '[spark]\n"spark.hadoop.fs.s3a.secret.key" = "hunter2"\n'))
    config = load_config(conf, {"EXPORT_JOBS_SPARK_MASTER": "local[1]"})
    shown = shown_settings(config, conf, "--conf")
    settings = shown["settings"]
    assert (shown["file"], shown["chosenBy"]) == (str(conf), "--conf")
    assert settings["jobTable"]["from"] == "file" and settings["leaseSeconds"]["from"] == "default"
    assert settings["spark"]["value"] == {
        "spark.hadoop.fs.s3a.secret.key": {"value": "***", "from": "file"},
        "master": {"value": "local[1]", "from": "EXPORT_JOBS_SPARK_MASTER"},
        "spark.sql.shuffle.partitions": {"value": "4", "from": "file"},
    }
    assert [t["tokenSha256"] for t in settings["tenants"]["value"]] == ["***"]
    assert "hunter2" not in json.dumps(shown) and token_sha256("t") not in json.dumps(shown)


def test_jar_modes_give_the_session_its_delta_jars(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPORT_JOBS_JARS", str(tmp_path))
    with pytest.raises(RuntimeError, match="run `export-jobs setup-jars`"):
        jar_settings("folder")
    assert jar_settings("packages") == {"spark.jars.packages": ",".join(delta_coordinates())}
    assert jar_settings("provided") == {}


def _repository(tmp_path: Path, checksum: str | None = None) -> str:
    for coordinate in delta_coordinates():
        group, artifact, version = coordinate.split(":")
        folder = tmp_path.joinpath("maven", *group.split("."), artifact, version)
        folder.mkdir(parents=True, exist_ok=True)
        content = f"jar of {coordinate}".encode()
        (folder / jar_file_name(coordinate)).write_bytes(content)
        (folder / f"{jar_file_name(coordinate)}.sha1").write_text(
            f"{checksum or hashlib.sha1(content).hexdigest()}  {jar_file_name(coordinate)}\n")
    return (tmp_path / "maven").as_uri()


def test_fetched_jars_are_checked_and_land_whole(tmp_path):
    jars = fetch_jars(tmp_path / "jars", _repository(tmp_path))
    assert [p.name for p in jars] == [jar_file_name(c) for c in delta_coordinates()]
    assert sorted(p.name for p in (tmp_path / "jars").iterdir()) == sorted(p.name for p in jars)


def test_a_jar_that_does_not_match_its_checksum_is_not_saved(tmp_path, capsys):
    repository = _repository(tmp_path, checksum="0" * 40)
    with pytest.raises(RuntimeError, match="does not match its SHA-1"):
        fetch_jars(tmp_path / "jars", repository)
    assert list((tmp_path / "jars").iterdir()) == []
    assert cli.main(["setup-jars", "--dir", str(tmp_path / "jars"), "--repository", repository]) == 69


NO_PYSPARK = """
import sys
class NoPyspark:  # as where the spark extra is not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pyspark", "delta", "py4j"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoPyspark())
from jobs.shells.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_commands_that_need_no_spark_run_without_the_spark_extra(conf, config, tmp_path):
    job = {"destination": {"datasetId": config.destination_datasets[0].id},
           "schema": {"name": config.destination_datasets[0].schema_name}}

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", NO_PYSPARK, "--conf", str(conf), *args], input=stdin,
                              capture_output=True, text=True, timeout=120)

    created = run("create", "-", stdin=json.dumps(job))
    assert created.returncode == 0, created.stderr
    job_id = str(json.loads(created.stdout)["id"])
    for args in (["get", job_id], ["list"], ["segment", "list"], ["schedule", "list"], ["config", "show"],
                 ["cancel", job_id]):
        done = run(*args)
        assert done.returncode == 0, (args, done.stderr)
    created = run("create", "-", stdin=json.dumps(job))
    ran = run("run", str(json.loads(created.stdout)["id"]))
    assert ran.returncode == 69 and "pip install 'segment-export-jobs[spark]'" in ran.stderr


def _job(config) -> dict:
    return {"destination": {"datasetId": config.destination_datasets[0].id},
            "schema": {"name": config.destination_datasets[0].schema_name}}


@pytest.mark.parametrize("argv", [["validate", "{file}"], ["create", "--dry-run", "{file}"]])
def test_validate_makes_every_check_and_stores_nothing(conf, config, capsys, tmp_path, argv):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_job(config)))
    bad.write_text(json.dumps(dict(_job(config), fields="nope.missing", destination={"datasetId": "nowhere"})))
    assert cli.main(["--conf", str(conf), *[a.format(file=good) for a in argv]]) == 0
    would = json.loads(capsys.readouterr().out)
    assert (would["id"], would["status"], would["mergePolicy"]["id"]) == (0, "NEW", config.default_policy().id)
    assert cli.main(["--conf", str(conf), *[a.format(file=bad) for a in argv]]) == EXIT_REJECTED
    assert {e["path"] for e in json.loads(capsys.readouterr().out)["errors"]} == {"fields", "destination.datasetId"}
    assert JobStore(config.job_table_path).list(config.default_org, config.default_sandbox) == []


def test_wait_exits_by_the_jobs_status_or_on_its_timeout(conf, config, capsys):
    store = JobStore(config.job_table_path)
    created = create_job(store, config, _job(config), config.default_org, config.default_sandbox)
    assert cli.main(["--conf", str(conf), "wait", str(created.id), "--timeout", "0.2", "--interval", "0.05"]) \
        == EXIT_TIMEOUT
    assert json.loads(capsys.readouterr().out)["status"] == "NEW"
    store.replace(created.updated(status="CANCELLED"), [created.status])
    assert cli.main(["--conf", str(conf), "wait", str(created.id)]) == EXIT_FAILED
    assert json.loads(capsys.readouterr().out)["status"] == "CANCELLED"
    assert cli.main(["--conf", str(conf), "wait", "999"]) == EXIT_NOT_FOUND


def test_schedule_get(conf, config, capsys, tmp_path):
    body = tmp_path / "schedule.json"
    body.write_text(json.dumps({"cron": "0 * * * *", "incremental": True, "job": _job(config)}))
    assert cli.main(["--conf", str(conf), "schedule", "create", str(body)]) == 0
    created = json.loads(capsys.readouterr().out)
    assert cli.main(["schedule", "get", created["id"], "--conf", str(conf)]) == 0
    assert json.loads(capsys.readouterr().out) == created
    assert cli.main(["--conf", str(conf), "schedule", "get", "no-such-schedule"]) == EXIT_NOT_FOUND
    capsys.readouterr()
    assert cli.main(["--conf", str(conf), "schedule", "pause", created["id"]]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "inactive"
    assert cli.main(["--conf", str(conf), "schedule", "resume", created["id"]]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "active"


def test_close_matches_are_suggested_for_unknown_keys_datasets_and_fields(config):
    with pytest.raises(RequestRejected) as keys:
        parse_definition({"feilds": "x", "destination": {"datasetId": "a", "segmentPerBach": True},
                          "schema": {"name": "s"}})
    assert {(p.path, p.message) for p in keys.value.problems} == {
        ("feilds", "unknown key; did you mean 'fields'?"),
        ("destination.segmentPerBach", "unknown key; did you mean 'segmentPerBatch'?")}
    destination = config.destination_datasets[0]
    body = {"fields": "persn.name", "destination": {"datasetId": destination.id[:-1] + "x"},
            "schema": {"name": destination.schema_name}}
    with pytest.raises(RequestRejected) as values:
        create_job(JobStore(config.job_table_path), config, body, config.default_org, config.default_sandbox)
    messages = {p.path: p.message for p in values.value.problems}
    assert messages["destination.datasetId"].endswith(f"; did you mean {destination.id!r}?")
    assert messages["fields"].endswith("no field 'persn' here; did you mean 'person'?")


def test_read_commands_print_a_table_for_people_and_json_when_piped(conf, config, capsys, monkeypatch):
    store = JobStore(config.job_table_path)
    created = create_job(store, config, _job(config), config.default_org, config.default_sandbox)
    assert cli.main(["--conf", str(conf), "list"]) == 0  # piped (captured): JSON
    assert json.loads(capsys.readouterr().out)["records"][0]["id"] == created.id
    assert cli.main(["--conf", str(conf), "list", "--output", "table"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "STATUS", "CREATED", "(UTC)", "DESTINATION", "EXPORTED", "TIME", "ERRORS"]
    assert row.split()[:2] == [str(created.id), "NEW"] and row.split()[-1] == "0"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # a terminal: a table unless --output json
    assert cli.main(["--conf", str(conf), "get", str(created.id)]) == 0
    shown = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert shown["status"].strip() == "NEW" and shown["merge policy"].strip() == f"{config.default_policy().id} v1"
    destination = config.destination_datasets[0].id
    assert shown["destination"].strip() == f"{destination} (batches: {created.export_destination.batch_id})"
    assert cli.main(["--conf", str(conf), "get", str(created.id), "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == created.id


def test_a_list_table_names_the_next_pages_cursor(conf, config, capsys):
    store = JobStore(config.job_table_path)
    for _ in range(3):
        create_job(store, config, _job(config), config.default_org, config.default_sandbox)
    assert cli.main(["--conf", str(conf), "list", "--limit", "2", "--output", "table"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("next page: --offset ")
    assert cli.main(["--conf", str(conf), "list", "--limit", "2", "--offset", last.split()[-1]]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)["records"]] == [1]


def test_explain_names_what_a_job_would_read_and_do_and_stores_nothing(conf, config, capsys, tmp_path):
    body = tmp_path / "job.json"
    body.write_text(json.dumps(dict(_job(config), fields="person.name",
                                    filter={"segments": [{"segmentId": "s1", "status": ["exited"]}]})))
    assert cli.main(["--conf", str(conf), "explain", str(body)]) == 0
    explained = json.loads(capsys.readouterr().out)
    assert [(p["datasetId"], p["version"]) for p in explained["reads"]["profiles"]] == [
        (d.id, 0) for d in config.profile_datasets]  # the empty tables' first version
    assert explained["filter"]["segments"] == [{"segmentNs": "ups", "segmentId": "s1", "status": ["exited"]}]
    assert explained["fields"] == ["person.name"]
    assert explained["destination"] == {"path": config.resolve(config.destination_datasets[0].path),
                                        "segmentPerBatch": False, "batches": 1}
    assert explained["steps"][-1] == "write 1 batch(es) to the destination in one Delta commit"
    assert JobStore(config.job_table_path).list(config.default_org, config.default_sandbox) == []


def test_schedules_are_listed_in_pages_like_jobs_and_definitions(conf, config, capsys, tmp_path):
    body = tmp_path / "schedule.json"
    body.write_text(json.dumps({"cron": "0 * * * *", "job": _job(config)}))
    created = []
    for _ in range(3):
        assert cli.main(["--conf", str(conf), "schedule", "create", str(body)]) == 0
        created.append(json.loads(capsys.readouterr().out)["id"])
    assert cli.main(["--conf", str(conf), "schedule", "list", "--limit", "2"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first["records"]) == 2 and first["page"]["pageSize"] == 2
    offset = first["link"]["next"].split("offset=")[1]
    assert cli.main(["--conf", str(conf), "schedule", "list", "--limit", "2", "--offset", offset]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["link"] == {}
    assert sorted(s["id"] for s in first["records"] + second["records"]) == sorted(created)


def test_every_unknown_field_path_is_reported_at_once(config):
    destination = config.destination_datasets[0]
    body = {"fields": "nope.a,person.name,zzz", "destination": {"datasetId": destination.id},
            "schema": {"name": destination.schema_name}}
    with pytest.raises(RequestRejected) as refused:
        create_job(JobStore(config.job_table_path), config, body, config.default_org, config.default_sandbox)
    assert [(p.path, p.message.split(" ")[0]) for p in refused.value.problems] == [
        ("fields", "'nope.a'"), ("fields", "'zzz'")]


def test_create_warns_about_a_segment_id_nothing_knows_and_still_creates_the_job(conf, config, capsys, caplog,
                                                                                 tmp_path):
    body = tmp_path / "job.json"
    body.write_text(json.dumps(dict(_job(config), filter={"segments": [{"segmentId": "segmnt-01"}]})))
    assert cli.main(["--conf", str(conf), "create", str(body)]) == 0
    created = json.loads(capsys.readouterr().out)
    assert [w["code"] for w in created["warnings"]] == ["UNKNOWN_SEGMENT"]
    assert "filter.segments[0].segmentId: no segment definition" in caplog.text
    assert JobStore(config.job_table_path).get(created["id"]).warnings is not None


def test_sigterm_stops_claiming_at_once_and_releases_the_running_job_after_the_grace():
    stop, release = threading.Event(), threading.Event()
    release_timer, give_up = cli._stop_claiming(stop, release, grace=0.05, release_wait=3600)
    try:
        assert stop.is_set() and not release.is_set()
        assert release.wait(5)
        assert give_up.is_alive()  # exits the process only if the released job's Spark work hangs
    finally:
        give_up.cancel()
    release_timer.join()


def test_privacy_requests_from_the_command_line(conf, capsys, tmp_path):
    body = tmp_path / "request.json"
    body.write_text(json.dumps({"companyContexts": [{"namespace": "imsOrgID", "value": "demo@Org"}],
                                "regulation": "ccpa", "users": [{"key": "k", "action": ["delete"],
                                                                 "userIDs": [{"namespace": "ECID", "value": "1"}]}]}))
    assert cli.main(["--conf", str(conf), "privacy", "create", str(body)]) == 0
    [job] = json.loads(capsys.readouterr().out)["jobs"]
    assert cli.main(["--conf", str(conf), "privacy", "get", job["jobId"]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["status"], shown["regulation"], shown["user"]["action"]) == ("processing", "ccpa", ["delete"])
    assert cli.main(["--conf", str(conf), "privacy", "list", "--status", "processing"]) == 0
    assert [j["jobId"] for j in json.loads(capsys.readouterr().out)["jobs"]] == [job["jobId"]]
    # Another org's request: refused, exit 3, the field named.
    body.write_text(body.read_text().replace("demo@Org", "someone@Else"))
    assert cli.main(["--conf", str(conf), "privacy", "create", str(body)]) == 3
    assert "companyContexts" in capsys.readouterr().out


def test_segment_jobs_from_the_command_line(tmp_path, config, capsys):
    conf = tmp_path / "with-segmentation.toml"
    conf.write_text(sample_config(tmp_path, segmentation=str(tmp_path / "memberships")))
    definition = tmp_path / "segment.json"
    expression = {"type": "PQL", "format": "pql/text", "value": 'person.name = "A"'}
    schema = {"name": "_xdm.context.profile"}
    definition.write_text(json.dumps({"name": "n", "schema": schema, "expression": expression}))
    assert cli.main(["--conf", str(conf), "segment", "create", str(definition)]) == 0
    segment = json.loads(capsys.readouterr().out)["id"]
    assert cli.main(["--conf", str(conf), "segment", "job-create", segment]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["status"] == "QUEUED" and [s["segmentId"] for s in job["segments"]] == [segment]
    assert cli.main(["--conf", str(conf), "segment", "job-get", job["id"]]) == 0
    assert json.loads(capsys.readouterr().out) == job
    assert cli.main(["--conf", str(conf), "segment", "job-list", "--status", "QUEUED"]) == 0
    assert [j["id"] for j in json.loads(capsys.readouterr().out)["children"]] == [job["id"]]
    assert cli.main(["--conf", str(conf), "get", job["id"]]) == 0  # the job table's own view of it
    assert json.loads(capsys.readouterr().out)["jobType"] == "SEGMENTATION"
    assert cli.main(["--conf", str(conf), "segment", "job-create", segment, "--all"]) == EXIT_USAGE
    assert cli.main(["--conf", str(conf), "segment", "job-create", "nope"]) == EXIT_REJECTED
    assert "[0].segmentId" in capsys.readouterr().out


def test_replay_prints_the_new_job_of_a_job_that_ran(conf, config, capsys):
    store = JobStore(config.job_table_path)
    body = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
    job = create_job(store, config, body, config.default_org, config.default_sandbox)
    argv = ["--conf", str(conf), "replay", str(job.id), "--destination", "audience"]
    assert cli.main(argv) == EXIT_CONFLICT  # it has read nothing yet
    store.replace(job.updated(inputs=JobInputs(versions={})), expected=[JobStatus.NEW])
    capsys.readouterr()
    assert cli.main(argv) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert replayed["replayOf"] == job.id and replayed["status"] == "NEW"
