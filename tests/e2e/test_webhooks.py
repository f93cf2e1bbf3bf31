"""`export-jobs serve` sends webhook deliveries: a real process (without its runner, so without Spark), a
job cancelled through its API, the signed event at a local receiver, and the delivery log over HTTP."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

import httpx
import pyarrow as pa
import pytest

from jobs.spec import verify
from receiver import SECRET, SECRET_ENV, add_webhook, receiving
from sample_lake import empty_table, sample_config

from .server import wait_until_serving
from .test_serve import free_port

pytestmark = pytest.mark.e2e

HEADERS = {"Authorization": "Bearer t0ken", "x-api-key": "e2e", "x-gw-ims-org-id": "demo@Org",
           "x-sandbox-name": "prod"}
JOB = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}


def test_serve_delivers_the_events_of_the_jobs_its_api_finishes(tmp_path):
    empty_table(tmp_path / "profiles/profiles_0", person=pa.struct([("name", pa.string())]))
    empty_table(tmp_path / "profiles/profiles_1", personalEmail=pa.struct([("address", pa.string())]))
    empty_table(tmp_path / "events/events_0", _id=pa.string(), web=pa.struct([("url", pa.string())]))
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path, tenants=[("demo@Org", ["prod"], hashlib.sha256(b"t0ken").hexdigest())]))
    port = free_port()
    with receiving() as receiver:
        add_webhook(conf, receiver.url, events=("job.cancelled",))
        server = subprocess.Popen(
            [sys.executable, "-m", "jobs", "--conf", str(conf), "serve", "--no-runner", "--port", str(port)],
            env={**os.environ, SECRET_ENV: SECRET}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=HEADERS, timeout=30) as client:
                wait_until_serving(client)
                job_id = client.post("/export/jobs", json=JOB).json()["id"]
                assert client.delete(f"/export/jobs/{job_id}").status_code == 200
                deadline = time.monotonic() + 30
                # The receiver has the request before the server records its answer: wait for both.
                log: dict = {"status": "PENDING"}
                while not receiver.requests or log["status"] == "PENDING":
                    assert time.monotonic() < deadline, "no delivery"
                    time.sleep(0.1)
                    [log] = client.get("/webhooks/deliveries").json()["deliveries"] or [log]
        finally:
            server.terminate()
            server.wait(30)
    [delivered] = receiver.requests
    assert verify(SECRET, delivered.headers["X-Export-Jobs-Signature"], delivered.body, int(time.time()))
    assert delivered.event["type"] == "job.cancelled" and delivered.event["data"]["jobId"] == job_id
    assert (log["eventId"], log["status"], log["attempts"]) == (delivered.event["id"], "DELIVERED", 1)
