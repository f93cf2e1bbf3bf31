"""Operating costs (scripts/bench operate): GET /metrics, webhooks and the web console, without Spark.

A temporary deployment whose job table holds `--jobs` jobs written in a few bulk commits (api.fill), a
history of one job a minute: 90% finished, with their run time and counters, the newest 10% NEW.
1. A real uvicorn server on 127.0.0.1 is scraped with the scrape token: the first scrape after the start
   (it reads every finished record), then steady scrapes, beside the first page of the job list.
2. A runner's final write of a job (JobStore.replace to SUCCEEDED, through JobHandle.finish) without
   webhooks and with two endpoints subscribed to job.succeeded, jobs taken in turn; then the same beside a
   deliverer in this process sending to a receiver that hangs past the attempts' timeout, with a third
   store whose two endpoints are that receiver's (their log is the one being sent).
3. A WebhookDeliverer sends `--deliveries` deliveries, recorded one commit a job, to a receiver answering
   200: recorded first, then sent; and recorded while it sends. The delivery log's disk use is measured
   before and after maintenance.
4. The console's page, script and style: their bytes and how long serving them takes.
Every figure beside its baseline comes from the same run, their requests or jobs taken in turn.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from deltalake import DeltaTable

from benchmarks.api import BODY, HEADERS, ORG, SANDBOX, TOKEN, disk, fill, timed
from benchmarks.rounds import say
from jobs.control import DeliveryStore, JobStore, WebhookDeliverer, claim, job_event_recorder, new_record, record_events
from jobs.shells.http import make_server, running
from jobs.spec import (
    Config,
    JobRecord,
    JobStatus,
    Metrics,
    TimeSpan,
    job_events,
    load_config,
    now_ms,
    parse_definition,
)
from receiver import receiving
from sample_lake import empty_deployment

SCRAPE_TOKEN = "bench-scrape-token"
SCRAPER = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}
SECRET_ENV, SECRET = "EXPORT_JOBS_BENCH_WEBHOOK_SECRET", "whsec-bench-0123456789"
ENDPOINTS = ("crm", "ops")
JOB_SPACING_MS = 60_000  # one job a minute: 20,000 jobs are two weeks of history
FINISHED_SHARE = 0.9
# The hanging receiver answers only after this long, past the attempts' timeout (timeoutSeconds).
HANG_TIMEOUT_S, HANG_S = 1.0, 3.0
CONSOLE = ("/console", "/console/console.js", "/console/console.css")
NO_HOOKS, HOOKS = "none", "2 endpoints (their log idle)"
HANGING = "2 endpoints of the hanging receiver (their log being sent)"
DELIVERY_WAIT_S = 900.0  # at most, for the deliveries to be sent
# Rounds of the figures compared side by side: each round times every one of them in turn.
ROUNDS = 5


def history(jobs: int, now: int) -> Callable[[JobRecord], JobRecord]:
    """What api.fill's NEW record of job i becomes: created i minutes apart up to now; the oldest 90%
    finished (mostly SUCCEEDED, some FAILED and CANCELLED), with a run time and counters."""

    def shape(record: JobRecord) -> JobRecord:
        created = now - (jobs - record.id + 1) * JOB_SPACING_MS
        if record.id > jobs * FINISHED_SHARE:
            return record.updated(creation_time=created, update_time=created)
        status = (JobStatus.FAILED if record.id % 20 == 0 else JobStatus.CANCELLED if record.id % 25 == 0
                  else JobStatus.SUCCEEDED)
        start, run_ms = created + 1_000, 20_000 + (record.id * 7_919) % 1_800_000
        exported = (record.id * 104_729) % 5_000_000
        metrics = Metrics(total_time=TimeSpan(start_time_in_ms=start).finish(start + run_ms),
                          total_exported_profile_counter=exported,
                          exported_profile_by_namespace_counter={"ECID": exported, "email": exported // 2},
                          rejected_record_counter=record.id % 7)
        return record.updated(status=status, creation_time=created, update_time=start + run_ms, metrics=metrics)

    return shape


def variant(root: Path, name: str, urls: tuple[str, ...] = (), **delivery: float) -> Config:
    """The deployment's config with the scrape token, its own delivery log, and a webhook to each of `urls`
    (ENDPOINTS' names) subscribed to job.succeeded, sent as `delivery` ([webhookDelivery]) says."""
    digest = hashlib.sha256(SCRAPE_TOKEN.encode()).hexdigest()
    lines = [f'metricsTokenSha256 = "{digest}"', f'webhookTable = "{root / name}-deliveries"',
             (root / "export.toml").read_text()]
    for hook, url in zip(ENDPOINTS, urls, strict=False):
        lines += ["[[webhooks]]", f'name = "{hook}"', f'url = "{url}"', f'org = "{ORG}"',
                  f'sandboxes = ["{SANDBOX}"]', 'events = ["job.succeeded"]', f'secretEnv = "{SECRET_ENV}"', ""]
    if delivery:
        lines += ["[webhookDelivery]", *(f"{key} = {value}" for key, value in delivery.items()), ""]
    conf = root / f"{name}.toml"
    conf.write_text("\n".join(lines))
    return load_config(conf)


def side_by_side(calls: dict[str, Callable[[], httpx.Response]], count: int) -> dict[str, list[float]]:
    """api.timed's milliseconds of each call, `count` in all, in ROUNDS rounds that take the calls in turn."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_number in range(ROUNDS):
        share = count // ROUNDS + (round_number < count % ROUNDS)
        for name, call in calls.items():
            times[name] += timed(call, share) if share else []
    return times


def finish_times(config: Config, stores: dict[str, JobStore], jobs: int, logs: tuple[Config, ...] = ()
                 ) -> dict[str, list[float]]:
    """Milliseconds of each store's final write of a job, as its runner makes it (JobHandle.finish:
    SUCCEEDED with the run time and counters), over `jobs` jobs each, the stores taking jobs in turn.

    Between jobs, untimed, the delivery logs of `logs` are compacted as a serving process's deliverer does
    after each pass: recording merges into the log, and its cost grows with the log's small files."""
    definition = parse_definition(BODY)
    times: dict[str, list[float]] = {name: [] for name in stores}
    for _ in range(jobs):
        for name, store in stores.items():
            record = store.create(lambda i: new_record(definition, config, i, ORG, SANDBOX, f"finish-{i}", now_ms()))
            handle = claim(store, record.id, "bench-runner", 60_000)
            handle.update(stage="exporting: 1/1 tasks")
            metrics = handle.record.metrics.updated(total_exported_profile_counter=1_000,
                                                    exported_profile_by_namespace_counter={"ECID": 1_000})
            started = time.perf_counter()
            handle.finish(JobStatus.SUCCEEDED, metrics=metrics)
            times[name].append((time.perf_counter() - started) * 1000)
        for hooks in logs:
            DeliveryStore(hooks.webhook_table_path).compact()
    return times


def statuses(config: Config) -> dict[str, int]:
    """The delivery log's deliveries by status."""
    tally: Counter[str] = Counter()
    for row in DeliveryStore(config.webhook_table_path).metric_rows():
        tally[row["status"]] += row["deliveries"]
    return dict(sorted(tally.items()))


def throughput(root: Path, deliveries: int, meanwhile: bool) -> dict[str, Any]:
    """`deliveries` deliveries (one job.succeeded event per job, to both endpoints, recorded one commit a
    job) sent by a WebhookDeliverer to a receiver answering 200: recorded first (the log compacted as a
    deliverer would), then sent; or, `meanwhile`, recorded while the deliverer sends, as under `serve`.
    The seconds to record them, and from the deliverer's start (meanwhile: the first recording) until every
    one is DELIVERED; the delivery log's disk use before and after maintenance."""
    with receiving() as receiver:
        url = receiver.url
        config = variant(root, f"sent-{'meanwhile' if meanwhile else 'after'}", (url, url))  # [webhookDelivery]
        definition = parse_definition(BODY)  # defaults: a deliverer polls every second
        events = []
        for job_id in range(1, deliveries // len(ENDPOINTS) + 1):
            record = new_record(definition, config, job_id, ORG, SANDBOX, f"event-{job_id}", now_ms())
            events.append(job_events(config.deployment, record.updated(status=JobStatus.SUCCEEDED,
                                                                      update_time=now_ms())))
        total = len(events) * len(ENDPOINTS)
        log = DeliveryStore(config.webhook_table_path)
        deliverer = WebhookDeliverer(config)
        if meanwhile:
            deliverer.start()
        started = time.perf_counter()
        try:
            for job in events:  # one commit per job, as each job's final write records its events
                record_events(config, job)
                if not meanwhile:
                    log.compact()  # once it has COMPACT_AFTER_FILES small files, as a deliverer's pass does
            recorded_s = time.perf_counter() - started
            if not meanwhile:
                started = time.perf_counter()
                deliverer.start()
            # Every recorded delivery is in the log now: wait until none is PENDING. A recording that lost
            # its commit races is logged by record_events, and missing from the log.
            while statuses(config).get("PENDING") and time.perf_counter() - started < DELIVERY_WAIT_S:
                time.sleep(0.05)
            delivered_s = time.perf_counter() - started
        finally:
            deliverer.stop()
        before = disk(config.webhook_table_path)
        log.compact()
        log.vacuum(retention_hours=0)  # as maintenance does once tableRetentionHours has passed
        logged = statuses(config)
        return {"deliveries": total, "logged": sum(logged.values()), "recorded_s": recorded_s,
                "delivered_s": delivered_s, "requests": len(receiver.requests), "statuses": logged, "before": before,
                "after": disk(config.webhook_table_path)}


def median_p95(times: list[float]) -> tuple[float, float]:
    return statistics.median(times), statistics.quantiles(times, n=20, method="inclusive")[18]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench operate", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs in the table (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=100,
                        help="timed requests per figure of the scrape and the console (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=40,
                        help="jobs finished per figure of the webhooks' cost (default: %(default)s)")
    parser.add_argument("--deliveries", type=int, default=500,
                        help="deliveries sent for the delivery throughput (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.requests < 2 or args.runs < 2 or args.deliveries < 2:
        parser.error("--requests, --runs and --deliveries need at least 2")
    # The webhooks' signing secret, as every process that records or sends deliveries has it.
    os.environ[SECRET_ENV] = SECRET

    with tempfile.TemporaryDirectory(prefix="export-jobs-bench-operate-") as temp:
        root = Path(temp)
        empty_deployment(root, {ORG: (TOKEN, [SANDBOX])})
        config = variant(root, "plain")
        started = time.perf_counter()
        fill(config, args.jobs, history(args.jobs, now_ms()))
        table = DeltaTable(config.job_table_path)
        say(f"job table: {args.jobs} jobs in {len(table.file_uris())} files, version {table.version()}, "
            f"filled in {time.perf_counter() - started:.1f} s")

        say("1. scrape and 4. console, on one server")
        with running(make_server(config, port=0, log_level="warning")) as url, \
                httpx.Client(base_url=url, headers=HEADERS, timeout=120) as client:
            started = time.perf_counter()
            client.get("/metrics", headers=SCRAPER).raise_for_status()
            first_scrape_ms = (time.perf_counter() - started) * 1000
            http = side_by_side({"GET /metrics": lambda: client.get("/metrics", headers=SCRAPER),
                                 "GET /export/jobs?limit=50": lambda: client.get("/export/jobs?limit=50")},
                                args.requests)
            scrape_bytes = len(client.get("/metrics", headers=SCRAPER).content)
            assets = side_by_side({path: partial(client.get, path) for path in CONSOLE}, args.requests)
            asset_bytes = {path: len(client.get(path).content) for path in CONSOLE}

        with receiving() as fast, receiving(delay=HANG_S) as hung:
            fast_url, hang_url = fast.url, hung.url
            hooked = variant(root, "hooked", (fast_url, fast_url))
            hanging = variant(root, "hanging", (hang_url, hang_url), timeoutSeconds=HANG_TIMEOUT_S, pollSeconds=0.2)
            plain_store = JobStore(config.job_table_path)
            hooked_store = JobStore(config.job_table_path, job_event_recorder(hooked))
            say("2. a job's final write, without and with webhooks")
            finishes = finish_times(config, {NO_HOOKS: plain_store, HOOKS: hooked_store}, args.runs, (hooked,))
            say("2. the same beside a deliverer sending to a receiver that hangs")
            deliverer = WebhookDeliverer(hanging)
            deliverer.start()
            try:
                beside_hang = finish_times(config, {
                    NO_HOOKS: plain_store, HOOKS: hooked_store,
                    HANGING: JobStore(config.job_table_path, job_event_recorder(hanging))}, args.runs,
                    (hooked, hanging))
            finally:
                deliverer.stop()
            hang_log = statuses(hanging)
            hang_attempts = len(hung.requests)
        say(f"3. {args.deliveries} deliveries to a receiver answering 200, recorded first, then sent")
        sent = {"recorded first, then sent": throughput(root, args.deliveries, meanwhile=False)}
        say(f"3. {args.deliveries} deliveries recorded while the deliverer sends")
        sent["recorded while the deliverer sends"] = throughput(root, args.deliveries, meanwhile=True)

    print(report(args, first_scrape_ms, scrape_bytes, http, assets, asset_bytes, finishes, beside_hang,
                 hang_log, hang_attempts, sent))
    return 0


def report(args: argparse.Namespace, first_scrape_ms: float, scrape_bytes: int, http: dict[str, list[float]],
           assets: dict[str, list[float]], asset_bytes: dict[str, int], finishes: dict[str, list[float]],
           beside_hang: dict[str, list[float]], hang_log: dict[str, int], hang_attempts: int,
           sent: dict[str, dict[str, Any]]) -> str:
    """The markdown report of the figures."""
    finished = int(args.jobs * FINISHED_SHARE)
    scrape, listing = (median_p95(http[name]) for name in ("GET /metrics", "GET /export/jobs?limit=50"))
    lines = [f"## Scrape: {args.jobs:,} jobs ({finished:,} finished with run times and counters), "
             f"{args.requests} requests each, taken in turn", "",
             "| request | median ms | p95 ms |", "|---|---:|---:|",
             f"| `GET /metrics`, the first after the start (once) | {first_scrape_ms:.1f} | |",
             f"| `GET /metrics`, steady ({scrape_bytes:,} bytes) | {scrape[0]:.1f} | {scrape[1]:.1f} |",
             f"| `GET /export/jobs?limit=50` | {listing[0]:.1f} | {listing[1]:.1f} |", "",
             f"steady scrape / list, medians: **{scrape[0] / listing[0]:.2f}**; first scrape / steady scrape: "
             f"{first_scrape_ms / scrape[0]:.1f}", ""]

    lines += [f"## A job's final write (to SUCCEEDED), {args.runs} jobs each, taken in turn", "",
              "| deliverer in the process | webhooks of the job's tenant | median ms | p95 ms | / none |",
              "|---|---|---:|---:|---:|"]
    medians = {}
    for deliverer, group in (("none", finishes), ("sending to a hanging receiver", beside_hang)):
        spread = {name: median_p95(times) for name, times in group.items()}
        medians[deliverer] = {name: median for name, (median, _) in spread.items()}
        lines += [f"| {deliverer} | {name} | {median:.1f} | {p95:.1f} | {median / spread[NO_HOOKS][0]:.2f} |"
                  for name, (median, p95) in spread.items()]
    hooks_ratio = medians["none"][HOOKS] / medians["none"][NO_HOOKS]
    hang_ratio = medians["sending to a hanging receiver"][HANGING] / medians["sending to a hanging receiver"][HOOKS]
    lines += ["", f"with 2 endpoints / without: **{hooks_ratio:.2f}**; endpoints whose receiver hangs, their log "
              f"being sent / endpoints whose log is idle, beside the same deliverer: **{hang_ratio:.2f}**",
              f"the hanging receiver (answers after {HANG_S:.0f} s, timeoutSeconds {HANG_TIMEOUT_S:.0f}) got "
              f"{hang_attempts} attempts meanwhile; its delivery log: {hang_log}", ""]

    lines += ["## Delivery throughput: a WebhookDeliverer to a receiver answering 200", "",
              "| deliveries | recorded, one commit a job, s | sent: the deliverer's start (meanwhile: the first "
              "recording) to all DELIVERED, s | deliveries/s |", "|---|---:|---:|---:|"]
    rates = {}
    for how, figures in sent.items():
        rates[how] = figures["statuses"].get("DELIVERED", 0) / figures["delivered_s"]
        lines.append(f"| {figures['deliveries']} {how} | {figures['recorded_s']:.1f} | {figures['delivered_s']:.1f} "
                     f"| {rates[how]:.1f} |")
    lines.append("")
    for how, figures in sent.items():
        lines += [f"{how}: recorded {figures['logged']} of {figures['deliveries']} deliveries (a recording that "
                  f"lost its commit races is logged on stderr); the receiver got {figures['requests']} requests; "
                  f"the log: {figures['statuses']}; on disk: {figures['before']}; after compaction and a vacuum "
                  f"once the retention has passed: {figures['after']}", ""]

    lines += [f"## Console, {args.requests} requests each", "",
              "| asset | bytes | median ms | p95 ms |", "|---|---:|---:|---:|"]
    for path, times in assets.items():
        median, p95 = median_p95(times)
        lines.append(f"| `{path}` | {asset_bytes[path]:,} | {median:.1f} | {p95:.1f} |")
    lines += ["", "; ".join([f"scrape / list {scrape[0] / listing[0]:.2f}",
                             f"final write with 2 endpoints / without {hooks_ratio:.2f}",
                             f"hanging / idle endpoints {hang_ratio:.2f}",
                             *(f"{rate:.1f} deliveries/s {how}" for how, rate in rates.items())])]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
