"""`export-jobs serve` as a user meets it: a real process, HTTP on loopback, jobs run by its runner."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

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
    """An export job, then an access request for one person it exported, both run by the server's runner."""
    root, _ = lake
    conf = tmp_path / "export.toml"
    privacy = f'privacyTable = "{tmp_path}/privacy"\nprivacyDocuments = "{tmp_path}/documents"\n'
    conf.write_text(privacy + sample_config(root, job_table=str(tmp_path / "jobs"), destination=str(tmp_path / "out"),
                                            tenants=[("demo@Org", ["prod"], hashlib.sha256(b"t0ken").hexdigest())]))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "jobs", "--conf", str(conf), "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers=HEADERS, timeout=30) as client:
            wait_until_serving(client)
            created = client.post("/export/jobs", json=JOB)
            assert created.status_code == 200, created.text
            job_id = created.json()["id"]
            record = wait_until_done(client, job_id)
            assert record["status"] == "SUCCEEDED", record.get("errors")
            config = load_config(conf)
            rows = read_rows(config.resolve(config.destination_datasets[0].path))
            assert len(rows) == record["metrics"]["totalExportedProfileCounter"] > 0
            refused = client.delete(f"/export/jobs/{job_id}")
            assert refused.status_code == 409

            ns, ecid = next((ns, i["id"]) for ns, items in rows[0]["identityMap"] for i in items if i["primary"])
            asked = client.post("/privacy/jobs", json={
                "companyContexts": [{"namespace": "imsOrgID", "value": "demo@Org"}], "regulation": "ccpa",
                "users": [{"key": "them", "action": ["access"], "userIDs": [{"namespace": ns, "value": ecid}]}]})
            assert asked.status_code == 200, asked.text
            privacy_id = asked.json()["jobs"][0]["jobId"]
            deadline = time.monotonic() + 300
            while (job := client.get(f"/privacy/jobs/{privacy_id}").json())["status"] == "processing":
                assert time.monotonic() < deadline, job
                time.sleep(0.5)
            assert job["status"] == "complete", job.get("errors")
            document = client.get(job["downloadURL"]).json()
            assert document == json.loads(Path(job["accessDocument"]).read_text())
            assert len(document["destinations"]["audience"]) == 1 and document["profileFragments"]["profiles_0"]
    finally:
        server.terminate()
        server.wait(30)
