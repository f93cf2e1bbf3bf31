"""Waiting for an `export-jobs serve` subprocess to answer, and for its runner to finish a job."""

from __future__ import annotations

import time

import httpx


def wait_until_serving(client: httpx.Client, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            client.get("/openapi.json")
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)


def wait_until_done(client: httpx.Client, job_id: int, seconds: float = 240) -> dict:
    """The job's record once the server's runner has finished it (any final status)."""
    deadline = time.monotonic() + seconds
    while True:
        record = client.get(f"/export/jobs/{job_id}").json()
        if record["status"] not in ("NEW", "PROCESSING"):
            return record
        assert time.monotonic() < deadline, record
        time.sleep(0.5)
