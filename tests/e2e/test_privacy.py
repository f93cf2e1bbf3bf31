"""An erasure as a user drives it: an export, a privacy request through the CLI (one of the two people
also asks for their data), a `run-pending` runner killed with SIGKILL (its Python and its JVM) just after
the batch's first delete committed, and a second runner that completes it with nothing deleted twice and
nothing missed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from jobs.control import JobStore, PrivacyStore, create_job, run_job
from jobs.spec import JobStatus, PrivacyStatus, load_config
from sample_lake import sample_config

from ..reference import erasure_commits, holding, read_rows
from .test_cli import JOB, cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_runner_killed_mid_erasure_is_retried_to_complete_once(spark, lake, tmp_path):
    root, _ = lake
    copy = tmp_path / "lake"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("system", "exports", "*.toml"))
    conf = tmp_path / "export.toml"  # a short lease: the second runner takes the batch over in 10 s
    conf.write_text("leaseSeconds = 1.0\nprivacyRetentionHours = 0\n" + sample_config(copy))
    config = load_config(conf)

    jobs = JobStore(config.job_table_path)  # the export runs in this session: the erasure is what is tested
    record = run_job(jobs, config, create_job(jobs, config, JOB, config.default_org, config.default_sandbox).id, spark)
    assert record.status is JobStatus.SUCCEEDED, record.errors
    exported = read_rows(config.resolve(config.destination_datasets[0].path))
    people = [next((ns, i["id"]) for ns, items in row["identityMap"] for i in items if i["primary"])
              for row in exported[:2]]
    request = {"companyContexts": [{"namespace": "imsOrgID", "value": config.default_org}], "regulation": "gdpr",
               "users": [{"key": f"p{n}", "action": ["access", "delete"][n:],
                          "userIDs": [{"namespace": ns, "value": value}]} for n, (ns, value) in enumerate(people)]}
    code, out, err = cli(conf, "privacy", "create", "-", stdin=json.dumps(request))
    assert code == 0, err
    ids = [j["jobId"] for j in json.loads(out)["jobs"]]
    erased = {(ns.lower(), value) for ns, value in people}
    paths = {d.id: config.resolve(d.path) for d in [*config.profile_datasets, *config.event_datasets,
                                                      *config.destination_datasets]}
    before = {name: len(holding(path, erased)) for name, path in paths.items()}
    first_person = holding(paths["audience"], {(people[0][0].lower(), people[0][1])})
    assert before["profiles_0"] and before["audience"]

    first = subprocess.Popen([sys.executable, "-m", "jobs", "--conf", str(conf), "run-pending"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while not erasure_commits(paths["profiles_0"]):  # the first DELETE of the batch has committed
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    store = PrivacyStore(config.privacy_table_path)
    killed = [store.get(i) for i in ids]
    assert all(j.status is PrivacyStatus.PROCESSING for j in killed)
    assert any(j.receipt("audience", "destination") is None for j in killed)  # it was killed mid-erasure

    time.sleep(10 * 1.0)  # the batch's lease: 10 × leaseSeconds
    code, _, err = cli(conf, "run-pending")
    assert code == 0, err
    code, out, err = cli(conf, "privacy", "list")
    assert code == 0, err
    done = sorted(json.loads(out)["jobs"], key=lambda j: ids.index(j["jobId"]))
    assert [j["status"] for j in done] == ["complete", "complete"], [j.get("errors") for j in done]
    assert all(j["attempts"] == 2 for j in done)
    code, out, err = cli(conf, "privacy", "document", ids[0])  # p0 asked for access too, before the erasure
    assert code == 0, err
    document = json.loads(out)
    assert len(document["destinations"]["audience"]) == len(first_person) > 0
    for name, path in paths.items():
        assert holding(path, erased) == [], name  # read with delta-rs
        assert len(erasure_commits(path)) == (1 if before[name] else 0), name  # nothing deleted twice
        receipts = [next(r for r in j["receipts"] if r["datasetId"] == name) for j in done]
        assert sum(r["rowsAffected"] for r in receipts) == before[name], name
