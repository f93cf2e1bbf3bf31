"""The CLI driven as a user would: separate processes, JSON on stdout, exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from jobs.control import JobStore
from jobs.spec import EXIT_NOT_FOUND, EXIT_REJECTED, EXIT_USAGE, JobStatus, load_config

from ..reference import read_rows

pytestmark = pytest.mark.e2e

# What Spark and the JVM print while starting, unless `--verbose` (docs/operations.md#quiet-start-up).
STARTUP_NOISE = ("WARNING: Using incubator modules", "NativeCodeLoader", "log4j", "Setting default log level", " WARN ")
JOB = {
    "fields": "identities.id,personalEmail.address",
    "filter": {"segments": [{"segmentId": "segment-01"}, {"segmentId": "segment-03", "status": "exited"}]},
    "destination": {"datasetId": "audience"},
    "schema": {"name": "_xdm.context.profile"},
}


def cli(conf, *args, stdin=None):
    result = subprocess.run(
        [sys.executable, "-m", "jobs", "--conf", str(conf), *args],
        input=stdin, capture_output=True, text=True, timeout=600,
    )
    return result.returncode, result.stdout, result.stderr


def test_create_run_get_through_the_cli(deployment, tmp_path):
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(JOB))

    code, out, err = cli(deployment, "create", str(job_file))
    assert code == 0, err
    created = json.loads(out)
    assert created["status"] == "NEW" and len(created["destination"]["batchId"]) == 32

    code, out, err = cli(deployment, "run", str(created["id"]))
    assert code == 0, err
    ran = json.loads(out)
    assert ran["status"] == "SUCCEEDED", ran.get("errors")
    assert "exporting" in err  # progress goes to stderr, not stdout
    assert [noise for noise in STARTUP_NOISE if noise in err] == [], err

    code, out, _ = cli(deployment, "get", str(created["id"]))
    assert code == 0 and json.loads(out) == ran

    config = load_config(deployment)
    rows = read_rows(config.resolve(config.destination_datasets[0].path))
    assert len(rows) == ran["metrics"]["totalExportedProfileCounter"] > 0
    by_ns: dict[str, int] = {}
    for row in rows:
        assert row["_batchId"] == created["destination"]["batchId"]
        assert set(row) == {"_batchId", "identityMap", "segmentMembership", "identities", "personalEmail"}
        for ns, _ in row["identityMap"]:
            by_ns[ns] = by_ns.get(ns, 0) + 1
    assert ran["metrics"]["exportedProfileByNamespaceCounter"] == by_ns

    code, out, _ = cli(deployment, "list", "--status", "SUCCEEDED")
    assert code == 0 and [r["id"] for r in json.loads(out)["records"]] == [created["id"]]


def test_a_rejected_request_exits_2_and_names_each_field(deployment):
    bad = dict(JOB, fields="identities.id,nope.missing", destination={"datasetId": "unknown"}, extra=1)
    code, out, err = cli(deployment, "create", "-", stdin=json.dumps(bad))
    assert code == EXIT_REJECTED, err
    problem = json.loads(out)
    assert problem["status"] == 400
    assert {e["path"] for e in problem["errors"]} == {"extra"}  # schema errors first; nothing stored

    code, out, _ = cli(deployment, "create", "-", stdin=json.dumps(dict(JOB, fields="nope.missing",
                                                                      destination={"datasetId": "unknown"})))
    assert code == EXIT_REJECTED
    paths = {e["path"] for e in json.loads(out)["errors"]}
    assert paths == {"fields", "destination.datasetId"}

    code, out, _ = cli(deployment, "list")
    assert code == 0 and json.loads(out)["records"] == []


def test_get_of_an_unknown_job_is_not_found_and_an_org_the_deployment_lacks_is_refused(deployment, tmp_path):
    code, out, err = cli(deployment, "create", "-", stdin=json.dumps(JOB))
    assert code == 0, err
    job_id = str(json.loads(out)["id"])
    code, out, err = cli(deployment, "--org", "other@Org", "get", job_id)
    assert (code, out) == (EXIT_USAGE, "") and "'other@Org' with sandbox 'prod' is not a tenant" in err
    assert cli(deployment, "get", "999")[0] == EXIT_NOT_FOUND
    assert cli(deployment, "get", job_id)[0] == 0


def test_per_segment_job_through_the_cli_writes_one_batch_per_segment(deployment):
    """Run with --verbose, which also shows what Spark says at start-up (each run starts a JVM)."""
    job = dict(JOB, destination={"datasetId": "audience", "segmentPerBatch": True})
    code, out, err = cli(deployment, "create", "-", stdin=json.dumps(job))
    assert code == 0, err
    created = json.loads(out)
    batches = created["destination"]["batches"]
    assert [b["segmentId"] for b in batches] == ["segment-01", "segment-03"]
    assert [b["status"] for b in batches] == [["realized", "existing"], ["exited"]]

    code, out, err = cli(deployment, "--verbose", "run", str(created["id"]))
    assert code == 0, err
    assert "Using Spark's default log4j profile" in err and "exporting" in err
    ran = json.loads(out)
    config = load_config(deployment)
    rows = read_rows(config.resolve(config.destination_datasets[0].path))
    per_batch = {b["batchId"]: 0 for b in batches}
    keys = set()
    for row in rows:
        per_batch[row["_batchId"]] += 1
        keys.add(next(i["id"] for _, items in row["identityMap"] for i in items if i["primary"]))
    counter = ran["metrics"]["exportedProfileBySegmentCounter"]["ups"]
    assert {b["segmentId"]: per_batch[b["batchId"]] for b in batches} == counter
    assert all(counter.values())
    assert ran["metrics"]["totalExportedProfileCounter"] == len(keys)


def test_sigterm_lets_run_pending_finish_its_job_and_claim_no_more(deployment):
    """A container stopping: the running job ends SUCCEEDED, the next stays NEW for another runner, exit 0."""
    deployment.write_text("shutdownGraceSeconds = 600\n" + deployment.read_text())  # however slow the machine
    ids = []
    for _ in range(2):
        code, out, err = cli(deployment, "create", "-", stdin=json.dumps(JOB))
        assert code == 0, err
        ids.append(json.loads(out)["id"])
    runner = subprocess.Popen([sys.executable, "-m", "jobs", "--conf", str(deployment), "run-pending"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    config = load_config(deployment)
    store = JobStore(config.job_table_path)
    deadline = time.monotonic() + 300
    while store.get(ids[0], config.default_org, config.default_sandbox).status is JobStatus.NEW:
        assert runner.poll() is None and time.monotonic() < deadline, runner.communicate()
        time.sleep(0.2)
    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=300)
    assert runner.returncode == 0, err
    assert "SIGTERM: claiming no more jobs" in err
    assert [r["id"] for r in json.loads(out)] == [ids[0]]
    statuses = [store.get(i, config.default_org, config.default_sandbox).status for i in ids]
    assert statuses == [JobStatus.SUCCEEDED, JobStatus.NEW]


def test_segment_estimate_and_preview_through_the_cli(deployment):
    code, out, err = cli(deployment, "segment", "estimate", "--pql", 'loyalty.tier = "gold"')
    assert code == 0, err
    estimate = json.loads(out)
    assert estimate["state"] == "RESULT_READY" and estimate["sampling"]["method"] == "keyHash"
    assert estimate["estimatedSize"] > 0 and estimate["confidenceInterval"]["level"] == 0.95

    # The stored preview is read again by its id, without Spark: it is computed already.
    code, out, err = cli(deployment, "segment", "preview", "--id", estimate["previewId"], "--limit", "2")
    assert code == 0, err
    page = json.loads(out)
    assert [p["loyalty"] for p in page["results"]] == [{"tier": "gold"}] * 2 and page["links"]["next"]

    code, out, err = cli(deployment, "segment", "preview", "--pql", "loyalty.tier = ")
    assert code == EXIT_REJECTED
    assert "predicateExpression" in json.loads(out)["errors"][0]["path"]
