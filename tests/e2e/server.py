"""Waiting for an `export-jobs serve` subprocess to answer."""

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
