"""`export-jobs serve` as a user meets it: a real process, HTTP on loopback, jobs run by its runner."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobs.spec import load_config
from sample_lake import sample_config

from ..reference import read_rows
from .server import wait_until_done, wait_until_serving

pytestmark = pytest.mark.e2e

HEADERS = {"Authorization": "Bearer t0ken", "x-api-key": "e2e", "x-gw-ims-org-id": "demo@Org",
           "x-sandbox-name": "prod"}
JOB = {"fields": "personalEmail.address", "filter": {"segments": [{"segmentId": "segment-02"}]},
       "destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_job_posted_to_the_server_is_run_by_its_runner(lake, tmp_path):
    """An export job and a preview beside it, then an access request and an erasure of one person it
    exported, all run by the server (on a copy of the shared lake: the erasure changes it); /metrics counts
    the job, and the server logs JSON lines."""
    root, _ = lake
    copy = tmp_path / "lake"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("system", "exports", "*.toml"))
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(copy, job_table=str(tmp_path / "jobs"), destination=str(tmp_path / "out"),
                                  segmentation=str(tmp_path / "memberships"),
                                  tenants=[("demo@Org", ["prod"], hashlib.sha256(b"t0ken").hexdigest())]))
    conf.write_text(f'metricsTokenSha256 = "{hashlib.sha256(b"scrape").hexdigest()}"\n' + conf.read_text())
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        server = subprocess.Popen([sys.executable, "-m", "jobs", "--conf", str(conf), "--log-format", "json", "serve",
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=stderr)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers=HEADERS, timeout=30) as client:
            wait_until_serving(client)
            created = client.post("/export/jobs", json=JOB)
            assert created.status_code == 200, created.text
            job_id = created.json()["id"]
            # A preview posted while the export runs is computed beside it, in the same warm session.
            gold = {"predicateExpression": 'loyalty.tier = "gold"'}
            preview_id = client.post("/preview", json=gold).json()["previewId"]
            estimate = settled(client, f"/estimate/{preview_id}")
            assert estimate["state"] == "RESULT_READY", estimate
            assert estimate["estimatedSize"] == estimate["matchedInSample"] > 0
            page = client.get(f"/preview/{preview_id}", params={"limit": 2}).json()
            assert [p["loyalty"] for p in page["results"]] == [{"tier": "gold"}] * 2
            record = wait_until_done(client, job_id)
            assert record["status"] == "SUCCEEDED", record.get("errors")
            config = load_config(conf)
            rows = read_rows(config.resolve(config.destination_datasets[0].path))
            assert len(rows) == record["metrics"]["totalExportedProfileCounter"] > 0
            refused = client.delete(f"/export/jobs/{job_id}")
            assert refused.status_code == 409
            scraped = client.get("/metrics", headers={"Authorization": "Bearer scrape"})
            metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value
                       for family in text_string_to_metric_families(scraped.text) for s in family.samples}
            tenant = (("org", "demo@Org"), ("sandbox", "prod"))
            assert metrics[("export_jobs_exported_rows_total", tenant)] == len(rows)
            assert metrics[("export_jobs_run_seconds_count", (("kind", "export"), ("status", "SUCCEEDED")))] == 1
            assert metrics[("export_jobs_lease_renewals_total", ())] >= 1

            # A segment job is run by the same runner: memberships written back, nothing exported.
            definition = {"name": "gold", "schema": {"name": "_xdm.context.profile"},
                          "expression": {"type": "PQL", "format": "pql/text", "value": 'loyalty.tier = "gold"'}}
            segment = client.post("/segment/definitions", json=definition).json()["id"]
            segment_job = client.post("/segment/jobs", json=[{"segmentId": segment}]).json()
            done = settled_job(client, f"/segment/jobs/{segment_job['id']}")
            assert done["status"] == "SUCCEEDED", done["errors"]
            assert done["metrics"]["segmentedProfileCounter"][segment] == estimate["estimatedSize"]

            ns, ecid = next((ns, i["id"]) for ns, items in rows[0]["identityMap"] for i in items if i["primary"])
            job = privacy_job(client, ns, ecid, ["access"])
            document = client.get(job["downloadURL"]).json()
            assert document == json.loads(Path(job["accessDocument"]).read_text())
            assert len(document["destinations"]["audience"]) == 1 and document["profileFragments"]["profiles_0"]
            job = privacy_job(client, ns, ecid, ["delete"])
            left = [r for r in read_rows(config.resolve(config.destination_datasets[0].path))
                    if (ns, ecid) in {(n, i["id"]) for n, items in r["identityMap"] for i in items}]
            assert left == [] and next(r for r in job["receipts"] if r["datasetId"] == "audience")["rowsAffected"] == 1
    finally:
        server.terminate()
        server.wait(30)
    # Spark's JVM writes lines of its own (log4j's); every line of Python's logging is one JSON object.
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("jobId") == job_id and line["logger"] == "jobs.control.runner" for line in lines), lines
    assert any(line["logger"] == "uvicorn.access" and line["path"] == "/export/jobs" and line["method"] == "POST"
               for line in lines)


def settled(client: httpx.Client, path: str) -> dict:
    """A preview's or estimate's answer once the server's worker has computed it."""
    deadline = time.monotonic() + 300
    while (answer := client.get(path).json())["state"] in ("NEW", "RUNNING"):
        assert time.monotonic() < deadline, answer
        time.sleep(0.25)
    return answer


def settled_job(client: httpx.Client, path: str) -> dict:
    deadline = time.monotonic() + 300
    while (job := client.get(path).json())["status"] in ("QUEUED", "PROCESSING", "CANCELLING"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def privacy_job(client: httpx.Client, namespace: str, value: str, actions: list[str]) -> dict:
    """A privacy request for one person, posted; its job once the server's runner completed it."""
    asked = client.post("/privacy/jobs", json={
        "companyContexts": [{"namespace": "imsOrgID", "value": "demo@Org"}], "regulation": "ccpa",
        "users": [{"key": "them", "action": actions, "userIDs": [{"namespace": namespace, "value": value}]}]})
    assert asked.status_code == 200, asked.text
    job_id = asked.json()["jobs"][0]["jobId"]
    deadline = time.monotonic() + 300
    while (job := client.get(f"/privacy/jobs/{job_id}").json())["status"] == "processing":
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["status"] == "complete", job.get("errors")
    return job
