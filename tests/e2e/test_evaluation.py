"""Segment definitions and evaluating exports as a user drives them, over HTTP and the CLI:
define → evaluate and export → write-back → a second evaluation gives `existing` with the first
qualification time kept → a profile that stops qualifying gives `exited`. The server's runner
runs the jobs, whichever way they were created, in one warm Spark session."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import httpx
import pytest

from jobs.spec import EXIT_NOT_FOUND, load_config
from sample_lake import sample_config, token_sha256

from ..reference import read_rows
from .server import wait_until_done, wait_until_serving
from .test_cli import cli
from .test_serve import HEADERS, free_port

pytestmark = pytest.mark.e2e


def definition(value: str) -> dict:
    return {"name": "by tier", "expression": {"type": "PQL", "format": "pql/text", "value": value},
            "schema": {"name": "_xdm.context.profile"}}


def job(segment: str, statuses: list[str]) -> dict:
    return {"fields": "loyalty.tier", "evaluationInfo": {"segmentation": True},
            "filter": {"segments": [{"segmentId": segment, "status": statuses}]},
            "destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}


def batch(config, record) -> dict[str, tuple[str | None, str, datetime]]:
    """The job's exported rows: profile key → (tier, membership status, lastQualificationTime)."""
    rows = read_rows(config.resolve(config.destination_datasets[0].path),
                     f"_batchId = '{record['destination']['batchId']}'")
    out: dict[str, tuple[str | None, str, datetime]] = {}
    for row in rows:
        key = next(i["id"] for _, items in row["identityMap"] for i in items if i["primary"])
        [(_, inner)] = row["segmentMembership"]
        [(_, membership)] = inner
        out[key] = ((row["loyalty"] or {}).get("tier"), membership["status"], membership["lastQualificationTime"])
    return out


def test_define_evaluate_write_back_and_evaluate_again(lake, tmp_path):
    root, _ = lake
    conf = tmp_path / "export.toml"
    # A segment table of its own: the shared lake's holds other tests' definitions of this tenant.
    conf.write_text(f'segmentTable = "{tmp_path / "segments"}"\n' + sample_config(
        root, job_table=str(tmp_path / "jobs"), destination=str(tmp_path / "out"),
        segmentation=str(tmp_path / "memberships"), tenants=[("demo@Org", ["prod"], token_sha256("t0ken"))]))
    config = load_config(conf)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "jobs", "--conf", str(conf), "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=HEADERS, timeout=60) as client:
            wait_until_serving(client)
            bad = client.post("/segment/definitions", json=definition('loyalty.tier = "gold" and loyalty.points > "x"'))
            assert bad.status_code == 400
            [problem] = bad.json()["errors"]
            assert problem["path"] == "expression.value"
            assert problem["message"].startswith("'loyalty.points > \"x\"' at position 27: compares a number")
            created = client.post("/segment/definitions", json=definition('loyalty.tier = "gold"'))
            assert created.status_code == 200, created.text
            segment = created.json()["id"]
            posted = client.post("/export/jobs", json=job(segment, ["realized"]))
            assert posted.status_code == 200, posted.text

            # 1. Evaluate and export: the gold profiles are realized now.
            first = wait_until_done(client, posted.json()["id"])
            assert first["status"] == "SUCCEEDED", first.get("errors")
            first_now = first["evaluationInfo"]["evaluationTime"]
            exported = batch(config, first)
            assert exported and {tier for tier, _, _ in exported.values()} == {"gold"}
            assert {status for _, status, _ in exported.values()} == {"realized"}
            assert first["metrics"]["segmentedProfileCounter"] == {segment: len(exported)}

            # 2. Again, through the CLI: existing, with the first qualification time kept.
            job_file = tmp_path / "existing.json"
            job_file.write_text(json.dumps(job(segment, ["existing"])))
            code, out, err = cli(conf, "create", str(job_file))
            assert code == 0, err
            second = wait_until_done(client, json.loads(out)["id"])
            assert second["status"] == "SUCCEEDED", second.get("errors")
            again = batch(config, second)
            assert set(again) == set(exported)
            assert {(status, qualified) for _, status, qualified in again.values()} == {
                ("existing", exported[next(iter(exported))][2])}
            assert int(next(iter(again.values()))[2].timestamp() * 1000) == first_now

            # 3. The definition changes (through the CLI); the gold profiles stop qualifying: exited.
            code, out, err = cli(conf, "segment", "update", segment, "-",
                                 stdin=json.dumps({"expression": definition('loyalty.tier = "silver"')["expression"]}))
            assert code == 0, err
            assert client.get(f"/segment/definitions/{segment}").json()["expression"]["value"] == \
                'loyalty.tier = "silver"'
            left = client.post("/export/jobs", json=job(segment, ["exited"]))
            third = wait_until_done(client, left.json()["id"])
            assert third["status"] == "SUCCEEDED", third.get("errors")
            gone = batch(config, third)
            assert set(gone) == set(exported) and {s for _, s, _ in gone.values()} == {"exited"}
            by_status = third["metrics"]["segmentedProfileByStatusCounter"][segment]
            assert by_status["exited"] == len(exported) and by_status["realized"] > 0

            code, out, _ = cli(conf, "segment", "list")
            assert code == 0 and [d["id"] for d in json.loads(out)["segments"]] == [segment]
            code, out, _ = cli(conf, "segment", "get", "no-such-id")
            assert code == EXIT_NOT_FOUND and json.loads(out)["status"] == 404
    finally:
        server.terminate()
        server.wait(30)
