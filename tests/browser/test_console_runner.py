"""The console on a real `export-jobs serve` whose runner runs the job on Spark: the list shows the job
appear and reach SUCCEEDED by itself, and its page shows the run's timeline and counters."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from sample_lake import sample_config
from tests.browser.conftest import Console
from tests.e2e.server import wait_until_serving
from tests.e2e.test_serve import HEADERS, JOB, free_port

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
def serving(lake, tmp_path) -> Iterator[str]:
    """`export-jobs serve` with its runner over the shared lake (a job table and destination of its own)."""
    root, _ = lake
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(root, job_table=str(tmp_path / "jobs"), destination=str(tmp_path / "out"),
                                  tenants=[("demo@Org", ["prod"], hashlib.sha256(b"t0ken").hexdigest())]))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "jobs", "--conf", str(conf), "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(60)


def test_a_job_run_by_the_servers_runner_is_watched_to_succeeded(browser, serving):
    console = Console(browser, serving)
    with httpx.Client(base_url=serving, headers=HEADERS, timeout=30) as client:
        wait_until_serving(client)
        console.sign_in(org="demo@Org", token="t0ken")
        console.wait_for("#jobs table, #jobs .empty")
        console.driver.execute_script("window.sameDocument = true")  # gone if the page reloads
        created = client.post("/export/jobs", json=JOB)
        assert created.status_code == 200, created.text
        job_id = created.json()["id"]
        console.wait_for(f'tr[data-job="{job_id}"] .badge')
        console.wait_for(f'tr[data-job="{job_id}"] .badge', "SUCCEEDED", seconds=240)
        assert console.driver.execute_script("return window.sameDocument") is True
        record = client.get(f"/export/jobs/{job_id}").json()

    exported = record["metrics"]["totalExportedProfileCounter"]
    assert exported > 0
    console.open(f"#/jobs/{job_id}")
    console.wait_for("#timeline", "Finished: SUCCEEDED")
    console.wait_for(".facts", str(exported))
    namespaces = record["metrics"]["exportedProfileByNamespaceCounter"]
    chart = console.wait_for(".chart", next(iter(namespaces)))
    assert all(namespace in chart.text for namespace in namespaces)
    console.screenshot("job-run-by-serve")
