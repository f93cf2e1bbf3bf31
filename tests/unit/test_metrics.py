"""The metrics' pure parts (docs/reference/metrics.md): families from the tables' rows, the collector, the
runner's counters, and JSON log lines. No Spark, no server."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

from jobs.control.jobs import JobStore
from jobs.control.leases import LostJob, claim, reap_lost_jobs, running_job
from jobs.control.metrics import (
    JobTableSource,
    TableCollector,
    finished_job,
    job_table_families,
    privacy_families,
    run_time_buckets,
    schedule_families,
)
from jobs.shells.logs import JsonFormatter
from jobs.spec import ConfigError, JobStatus, load_config, shown_settings
from tests.unit.test_claims import make_jobs


def samples(families, name):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in families if f.name == name for s in f.samples}


def group(status, jobs, job_type="BATCH", org="o", sandbox="prod", update_time=1_000):
    return {"jobType": job_type, "status": status, "imsOrgId": org, "sandboxName": sandbox, "jobs": jobs,
            "updateTime": update_time}


def record_row(job_id, status="SUCCEEDED", seconds=None, exported=None, rejected=None, job_type="BATCH", org="o"):
    metrics = {"totalTime": {"startTimeInMs": 0, **({"totalTimeInMs": seconds * 1000} if seconds else {})},
               **({"totalExportedProfileCounter": exported} if exported else {}),
               **({"rejectedRecordCounter": rejected} if rejected else {})}
    return {"id": job_id, "jobType": job_type, "status": status, "imsOrgId": org, "sandboxName": "prod",
            "updateTime": 1_000, "record": json.dumps({"id": job_id, "metrics": metrics})}


def test_run_time_buckets_are_cumulative_with_inf_last():
    buckets, total = run_time_buckets([0.5, 5, 20, 90, 400])
    assert dict(buckets) == {"1.0": 1, "5.0": 2, "15.0": 2, "30.0": 3, "60.0": 3, "120.0": 4, "300.0": 4,
                             "600.0": 5, "1200.0": 5, "1800.0": 5, "3600.0": 5, "7200.0": 5, "14400.0": 5,
                             "+Inf": 5}
    assert list(dict(buckets))[-1] == "+Inf" and total == 515.5


def test_job_families_count_kinds_statuses_and_the_queue_and_sum_the_finished_records():
    groups = [group("NEW", 3), group("NEW", 1, "SEGMENTATION"), group("NEW", 2, None, "p"), group("NEW", 1, org="p"),
              group("SUCCEEDED", 2), group("CANCELLED", 1)]
    finished = [finished_job(r) for r in (record_row(1, seconds=90, exported=10, rejected=2),
                                          record_row(2, seconds=30, exported=5),
                                          record_row(3, "CANCELLED"))]
    families = job_table_families(groups, finished)
    jobs = samples(families, "export_jobs_jobs")
    # A row written before segment jobs (jobType null) is an export job's.
    assert jobs[("export_jobs_jobs", (("kind", "export"), ("org", "p"), ("sandbox", "prod"), ("status", "NEW")))] == 3
    assert jobs[("export_jobs_jobs", (("kind", "segment"), ("org", "o"), ("sandbox", "prod"), ("status", "NEW")))] == 1
    assert samples(families, "export_jobs_queue_depth") == {
        ("export_jobs_queue_depth", (("kind", "export"),)): 6, ("export_jobs_queue_depth", (("kind", "segment"),)): 1}
    run = samples(families, "export_jobs_run_seconds")
    assert run[("export_jobs_run_seconds_count", (("kind", "export"), ("status", "SUCCEEDED")))] == 2
    assert run[("export_jobs_run_seconds_sum", (("kind", "export"), ("status", "SUCCEEDED")))] == 120
    assert not any(dict(labels).get("status") == "CANCELLED" for _, labels in run)  # it never ran
    assert samples(families, "export_jobs_exported_rows") == {
        ("export_jobs_exported_rows_total", (("org", "o"), ("sandbox", "prod"))): 15,
        ("export_jobs_exported_rows_total", (("org", "p"), ("sandbox", "prod"))): 0}
    assert samples(families, "export_jobs_rejected_records")[
        ("export_jobs_rejected_records_total", (("org", "o"), ("sandbox", "prod")))] == 2


def test_privacy_and_schedule_families():
    privacy = privacy_families([{"imsOrgId": "o", "sandboxName": "prod", "status": "processing", "jobs": 4,
                                 "waiting": 3},
                                {"imsOrgId": "o", "sandboxName": "prod", "status": "complete", "jobs": 2,
                                 "waiting": 0}])
    assert samples(privacy, "export_jobs_queue_depth") == {("export_jobs_queue_depth", (("kind", "privacy"),)): 3}
    assert len(samples(privacy, "export_jobs_jobs")) == 2
    schedules = schedule_families([{"imsOrgId": "o", "sandboxName": "prod", "type": "export", "state": "active",
                                    "schedules": 2}])
    assert samples(schedules, "export_jobs_schedules") == {("export_jobs_schedules", (
        ("org", "o"), ("sandbox", "prod"), ("state", "active"), ("type", "export"))): 2}


def test_the_collector_merges_shared_families_and_reports_an_unreadable_table():
    def broken():
        raise OSError("gone")

    def previews():
        gauge = GaugeMetricFamily("export_jobs_jobs", "jobs", labels=["kind"])
        gauge.add_metric(["preview"], 1)
        return [gauge]

    collected = list(TableCollector({
        "jobs": lambda: job_table_families([group("NEW", 1)], []), "previews": previews, "broken": broken}).collect())
    names = [f.name for f in collected]
    assert names.count("export_jobs_jobs") == 1
    assert len(samples(collected, "export_jobs_jobs")) == 2  # the job table's and the previews'
    assert samples(collected, "export_jobs_table_up") == {
        ("export_jobs_table_up", (("table", "jobs"),)): 1, ("export_jobs_table_up", (("table", "previews"),)): 1,
        ("export_jobs_table_up", (("table", "broken"),)): 0}


class FakeJobTable:
    """JobStore.metric_rows over rows given by the test, noting what each call asked for."""

    def __init__(self):
        self.groups, self.records, self.asked = [], [], []

    def metric_rows(self, records_since=None):
        self.asked.append(records_since)
        return self.groups, [r for r in self.records
                             if records_since is None or r["updateTime"] >= records_since]


def test_a_scrape_reads_only_the_records_of_jobs_finished_since_the_last_one():
    table = FakeJobTable()
    table.groups = [group("SUCCEEDED", 1, update_time=10_000_000)]
    table.records = [dict(record_row(1, seconds=60, exported=4), updateTime=10_000_000)]
    source = JobTableSource(table)  # type: ignore[arg-type]
    source()
    table.groups = [group("SUCCEEDED", 2, update_time=20_000_000)]
    table.records.append(dict(record_row(2, seconds=60, exported=6), updateTime=20_000_000))
    families = source()
    assert table.asked == [None, 10_000_000 - JobTableSource.SKEW_MS]
    assert samples(families, "export_jobs_exported_rows") == {
        ("export_jobs_exported_rows_total", (("org", "o"), ("sandbox", "prod"))): 10}


def test_a_job_finished_before_the_window_makes_the_scrape_read_every_record():
    table = FakeJobTable()
    table.groups = [group("SUCCEEDED", 1, update_time=10_000_000)]
    table.records = [dict(record_row(1, exported=4), updateTime=10_000_000)]
    source = JobTableSource(table)  # type: ignore[arg-type]
    source()
    # A runner whose clock is far behind finished a job "long ago".
    table.groups = [group("SUCCEEDED", 2, update_time=10_000_000)]
    table.records.append(dict(record_row(2, exported=6), updateTime=1))
    families = source()
    assert table.asked == [None, 10_000_000 - JobTableSource.SKEW_MS, None]
    assert samples(families, "export_jobs_exported_rows") == {
        ("export_jobs_exported_rows_total", (("org", "o"), ("sandbox", "prod"))): 10}


def test_the_runner_counts_lease_renewals_and_the_runners_it_took_jobs_from(config):
    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    store = JobStore(config.job_table_path)
    kept, lost = make_jobs(store, config, 2)
    renewals, taken = value("export_jobs_lease_renewals_total"), value("export_jobs_lost_runners_total",
                                                                       status="FAILED")
    claim(store, kept, "here", 60_000).update(stage="exporting")
    gone = claim(store, lost, "gone", lease_ms=-1)
    reap_lost_jobs(store, config)
    lost_leases = value("export_jobs_leases_lost_total")
    with pytest.raises(LostJob):
        gone.update(stage="still here?")
    assert value("export_jobs_lease_renewals_total") == renewals + 1
    assert value("export_jobs_lost_runners_total", status="FAILED") == taken + 1
    assert value("export_jobs_leases_lost_total") == lost_leases + 1
    assert store.get(lost).status is JobStatus.FAILED


def _line(formatter: JsonFormatter, record: logging.LogRecord) -> dict:
    text = formatter.format(record)
    assert "\n" not in text  # one object per line, a traceback included
    return json.loads(text)


def test_json_log_lines_carry_time_level_logger_message_and_the_job():
    formatter = JsonFormatter()
    record = logging.LogRecord("jobs.control.runner", logging.INFO, __file__, 1, "job %s: exporting to %s",
                               (7, "/x"), None)
    line = _line(formatter, record)
    assert line.pop("time").endswith("Z")
    assert line == {"level": "INFO", "logger": "jobs.control.runner", "message": "job 7: exporting to /x"}
    named = running_job.set(12)
    try:
        assert _line(formatter, record)["jobId"] == 12  # the job the thread runs
    finally:
        running_job.reset(named)
    record.job_id = 3  # given with extra={"job_id": 3}
    assert _line(formatter, record)["jobId"] == 3


def test_json_log_lines_of_uvicorns_access_log_and_of_exceptions():
    formatter = JsonFormatter()
    access = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/export/jobs?limit=2", "1.1", 200), None)
    line = _line(formatter, access)
    assert line["message"] == '127.0.0.1:5000 - "GET /export/jobs?limit=2 HTTP/1.1" 200'
    assert (line["client"], line["method"], line["path"], line["httpVersion"], line["status"]) == (
        "127.0.0.1:5000", "GET", "/export/jobs?limit=2", "1.1", 200)
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("export-jobs", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = _line(formatter, failed)
    assert line["level"] == "ERROR" and "ValueError: boom" in line["exception"]


def _stderr_lines(args: list[str], environ: dict[str, str] | None = None) -> list[dict]:
    run = subprocess.run([sys.executable, "-m", "jobs", *args], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2], env={**os.environ, **(environ or {})})
    assert run.returncode != 0 and run.stderr, run
    return [json.loads(line) for line in run.stderr.splitlines()]


def test_the_cli_logs_json_lines_with_log_format_json_or_the_configs_log_format(config, tmp_path):
    [line] = _stderr_lines(["--conf", str(tmp_path / "missing.toml"), "--log-format", "json", "list"])
    assert (line["level"], line["logger"]) == ("ERROR", "export-jobs")
    assert line["message"].startswith("INVALID_CONFIG: config file") and "missing.toml" in line["message"]
    conf = str(Path(config.base_dir) / "export.toml")
    [line] = _stderr_lines(["--conf", conf, "get", "99"], {"EXPORT_JOBS_LOG_FORMAT": "json"})
    assert line["level"] == "ERROR" and "no export job 99" in line["message"]


def test_the_scrape_tokens_hash_is_checked_and_masked(config, tmp_path):
    conf = Path(config.base_dir) / "export.toml"
    digest = hashlib.sha256(b"scrape").hexdigest()
    conf.write_text(f'metricsTokenSha256 = "{digest}"\nlogFormat = "json"\n' + conf.read_text())
    loaded = load_config(conf)
    assert (loaded.metrics_token_sha256, loaded.log_format) == (digest, "json")
    shown = shown_settings(loaded, conf, "--conf")
    assert shown["settings"]["metricsTokenSha256"] == {"value": "***", "from": "file"}
    assert digest not in json.dumps(shown)
    bad = tmp_path / "bad.toml"
    bad.write_text('metricsTokenSha256 = "scrape"\n' + conf.read_text().split("\n", 1)[1])
    with pytest.raises(ConfigError, match="metricsTokenSha256: String should match pattern"):
        load_config(bad)
