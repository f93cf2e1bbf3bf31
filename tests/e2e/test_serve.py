"""`export-jobs serve` as a user meets it: a real process, HTTP on loopback, jobs run by its runner."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys

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
    root, _ = lake
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(root, job_table=str(tmp_path / "jobs"), destination=str(tmp_path / "out"),
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
    finally:
        server.terminate()
        server.wait(30)
