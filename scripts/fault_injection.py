"""A fault-injection run (scripts/faults): export jobs whose runners are killed with SIGKILL at random moments.

A temporary deployment over a sample lake (generated with `scripts/sample_lake.py`, or given) with two
destinations, a short lease and `lostJobRetries`. N jobs are created, then R `export-jobs run-pending`
processes run them while this process kills one of them (its Python and its JVM) at random moments, and
starts a new one when one ends and there is work. A kill lands just after a claim (mostly while Spark
starts), a random delay into a job's export (reading, shuffling, writing: the record's `stage` shows the
tasks done), or as soon as the job's commit is in its destination, while its runner computes the
figures and writes the record. No job is killed more than --max-kills-per-job times, fewer than
lostJobRetries allows, so every job must end SUCCEEDED (a runner that is merely too slow to renew its
lease also costs its job a retry: the report counts those as unkilledLosses).

Then it checks, and reports as JSON on stdout: every job record is there and SUCCEEDED, each job has
exactly one commit in its destination's history (userMetadata jobId), its batch holds exactly the rows
its record counts, and every job (one definition, one lake) counts the same rows. Exit code 1 otherwise.

With --mirror the second destination is a mirror (docs/reference/mirrors.md), and the jobs to it take
turns between two definitions (segment-01, then segment-02), so that each MERGE inserts and deletes. A
mirror job has at most one commit (none if its MERGE changed nothing), every mirror job of one definition
counts the same audience, and the mirror holds exactly the audience of the job that committed to it last:
one row per profile key.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder

from jobs.control import JobNotFound, JobStore, create_job
from jobs.engine import already_committed
from jobs.planner import ExportPlan, build_plan
from jobs.shells import setup_logging
from jobs.spec import Config, JobRecord, JobStatus, load_config
from sample_lake import sample_config

REPO = Path(__file__).resolve().parents[1]
JOB = {"fields": "personalEmail.address", "filter": {"segments": [{"segmentId": "segment-01"}]},
       "schema": {"name": "_xdm.context.profile"}}
DESTINATIONS = ("audience", "audience-2")
SCHEMA = 'schemaName = "_xdm.context.profile"'
AFTER_COMMIT = "committed, record not written yet"
log = logging.getLogger("faults")


@dataclass(frozen=True)
class FaultRun:
    jobs: int = 40
    kills: int = 20
    runners: int = 2
    max_kills_per_job: int = 2
    lost_job_retries: int = 4
    lease_seconds: float = 2.0
    timeout_seconds: float = 1800.0
    seed: int = 7
    mirror: bool = False


@dataclass(frozen=True)
class Kill:
    job_id: int
    stage: str
    seconds_into_job: float


def deployment(work: Path, lake_root: Path, run: FaultRun) -> Path:
    """The run's config: the lake at `lake_root`, its own job table and two destinations under `work`."""
    text = sample_config(lake_root, job_table=str(work / "jobs"), destination=str(work / DESTINATIONS[0]))
    text += f'\n[[destinationDatasets]]\nid = "{DESTINATIONS[1]}"\npath = "{work / DESTINATIONS[1]}"\n{SCHEMA}\n'
    if run.mirror:
        text += 'mode = "mirror"\n'
    conf = work / "export.toml"
    conf.write_text(f"leaseSeconds = {run.lease_seconds}\nlostJobRetries = {run.lost_job_retries}\n" + text)
    return conf


def generate_lake(root: Path, profiles: int) -> None:
    """A sample lake with a few bad fragments (their examples make the work after the commit longer)."""
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "lake.toml"
    conf.write_text(sample_config(root))
    subprocess.run([sys.executable, str(Path(__file__).with_name("sample_lake.py")), "--conf", str(conf),
                    "--profiles", str(profiles), "--bad-fragments", "3"],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)


class Runners:
    """`export-jobs run-pending` processes, each in its own process group (Python and its JVM)."""

    def __init__(self, conf: Path, logs: Path, count: int, pace_seconds: float):
        self.conf, self.logs, self.count, self.pace = conf, logs, count, pace_seconds
        self.processes: list[subprocess.Popen[bytes]] = []
        self.started = 0
        self._last_start = 0.0

    def keep_up(self) -> None:
        """Start a runner for one that has ended; at most one start per pace (a runner that finds
        nothing to do, e.g. because a killed job's lease has not run out yet, ends at once)."""
        self.processes = [p for p in self.processes if p.poll() is None]
        if len(self.processes) < self.count and time.monotonic() - self._last_start >= self.pace:
            self._last_start = time.monotonic()
            self.started += 1
            with (self.logs / f"runner-{self.started}.log").open("wb") as out:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "jobs", "--conf", str(self.conf), "run-pending"],
                    cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))

    def holds(self, runner: str | None) -> int | None:
        """The pid of our live runner process named by a job's `runner` column (host:pid:nonce)."""
        pid = int(runner.rsplit(":", 2)[1]) if runner else None
        return pid if any(p.pid == pid and p.poll() is None for p in self.processes) else None

    def kill(self, pid: int) -> None:
        os.killpg(pid, signal.SIGKILL)
        next(p for p in self.processes if p.pid == pid).wait()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def committed(plans: dict[int, ExportPlan], config: Config, record: JobRecord) -> bool:
    """Whether the job's batches are in its destination (the plan is built once per job)."""
    if record.id not in plans:
        plans[record.id] = build_plan(record, config, JobStore(config.job_table_path).deployment(config.deployment))
    return already_committed(plans[record.id])


def typical_export_seconds(config: Config, store: JobStore) -> float:
    """The median export time (reading to commit) of the jobs done so far; 5 s before any."""
    done = store.list(config.default_org, config.default_sandbox, limit=1000, status=JobStatus.SUCCEEDED)
    times = [r.metrics.profile_export_time.total_time_in_ms / 1000 for r in done
             if r.metrics.profile_export_time and r.metrics.profile_export_time.total_time_in_ms]
    return statistics.median(times) if times else 5.0


@dataclass
class Target:
    """The next kill: a job and its runner, and when. `moment`: "claimed" (at once, mostly while
    Spark starts), "exporting" (`delay` seconds after its export started), or "commit" (as soon as
    its batches are committed, before the record says so)."""

    job_id: int
    pid: int
    moment: str
    delay: float
    at: float | None = None  # epoch seconds, once known


MOMENTS = ("claimed", "exporting", "exporting", "exporting", "commit")


def due(target: Target, record: JobRecord, after_commit: bool) -> bool:
    if target.moment == "commit":
        return after_commit
    if target.moment == "exporting" and target.at is None:
        if not (record.stage or "").startswith("exporting"):
            return after_commit  # it got past the export before the kill could land
        target.at = time.time() + target.delay
    return target.at is None or time.time() >= target.at


def inject(config: Config, store: JobStore, runners: Runners, run: FaultRun) -> list[Kill]:
    """Run the jobs to the end with runners kept up, killing them at random moments; returns the kills.

    After a kill, a random pause of up to a typical export, so that kills spread over the whole run.
    """
    rng = random.Random(run.seed)
    kills: list[Kill] = []
    per_job: Counter[int] = Counter()
    plans: dict[int, ExportPlan] = {}
    target: Target | None = None
    aim_after = 0.0
    deadline = time.monotonic() + run.timeout_seconds
    while True:
        running = {r["id"]: runners.holds(r["runner"]) for r in store.running() if r["status"] == "PROCESSING"}
        waiting = store.ids_with_status(JobStatus.NEW)
        if not running and not waiting:
            return kills
        if time.monotonic() > deadline:
            raise TimeoutError(f"the jobs did not finish within {run.timeout_seconds:g} s")
        # A new runner only if there is work for it: NEW jobs, or a job whose runner is gone.
        if waiting or None in running.values():
            runners.keep_up()
        if target is None and len(kills) < run.kills and time.time() >= aim_after:
            candidates = [j for j, pid in running.items() if pid and per_job[j] < run.max_kills_per_job]
            if candidates:
                job_id = rng.choice(candidates)
                target = Target(job_id, running[job_id] or 0, rng.choice(MOMENTS),
                                rng.uniform(0, typical_export_seconds(config, store)))
        if target is not None and running.get(target.job_id) != target.pid:
            target = None  # it ended, or another runner has it now: aim again
        if target is not None:
            record = store.get(target.job_id)
            after_commit = committed(plans, config, record)
            if due(target, record, after_commit):
                runners.kill(target.pid)
                started = record.metrics.total_time.start_time_in_ms if record.metrics.total_time else 0
                kill = Kill(target.job_id, AFTER_COMMIT if after_commit else record.stage or "claimed",
                            time.time() - started / 1000)
                kills.append(kill)
                per_job[target.job_id] += 1
                log.info("kill %d: job %d at %r, %.1f s into its run", len(kills), kill.job_id, kill.stage,
                         kill.seconds_into_job)
                target = None
                aim_after = time.time() + rng.uniform(0, typical_export_seconds(config, store))
        time.sleep(0.1)


def stage_of(kill: Kill) -> str:
    """A kill's moment, for counting: 'exporting: 3/8 tasks' counts as exporting."""
    return kill.stage.split(":")[0]


def destination_counts(config: Config) -> tuple[Counter[int], dict[str, int]]:
    """Commits per job id (from each destination's history) and rows per batch id."""
    commits: Counter[int] = Counter()
    rows: dict[str, int] = {}
    for dataset in config.destination_datasets:
        path = config.resolve(dataset.path)
        if not DeltaTable.is_deltatable(path):
            continue
        table = DeltaTable(path)
        commits.update(json.loads(h["userMetadata"])["jobId"] for h in table.history() if h.get("userMetadata"))
        sql = "SELECT _batchId AS batch, count(*) AS n FROM d GROUP BY _batchId"
        batches = pa.table(QueryBuilder().register("d", table).execute(sql)).to_pylist()
        rows.update((r["batch"], r["n"]) for r in batches)
    return commits, rows


def job_body(run: FaultRun, n: int) -> dict[str, Any]:
    """The n-th job: to each destination in turn; with --mirror, the jobs to the mirror (the second) take
    turns between two segments."""
    to_mirror = run.mirror and n % len(DESTINATIONS) == 1
    segment = f"segment-0{1 + (n // len(DESTINATIONS)) % 2}" if to_mirror else "segment-01"
    return {**JOB, "filter": {"segments": [{"segmentId": segment}]},
            "destination": {"datasetId": DESTINATIONS[n % len(DESTINATIONS)]}}


def segment_of(record: JobRecord) -> str:
    segments = record.definition().filter.segments
    assert segments, "every job of the run lists a segment"
    return segments[0].segment_id


def check_mirrors(config: Config, records: dict[int, JobRecord]) -> tuple[list[str], set[int]]:
    """The problems of mirror destinations, and the jobs with more than one commit: each mirror must hold
    exactly the audience of the job that committed to it last (its definition's count), one row per key."""
    problems: list[str] = []
    duplicated: set[int] = set()
    audiences: dict[str, Counter[int | None]] = {}
    for record in records.values():
        audiences.setdefault(segment_of(record), Counter())[record.metrics.total_exported_profile_counter] += 1
    expected = {segment: counts.most_common(1)[0][0] for segment, counts in audiences.items()}
    for job_id, record in records.items():
        segment = segment_of(record)
        if record.metrics.total_exported_profile_counter != expected[segment]:
            problems.append(f"job {job_id} counts {record.metrics.total_exported_profile_counter}, "
                            f"not {expected[segment]} as the other {segment} jobs")
    for dataset in config.destination_datasets:
        if dataset.mode != "mirror":
            continue
        table = DeltaTable(config.resolve(dataset.path))
        merges = [h for h in table.history() if h.get("userMetadata")]
        commits = Counter(json.loads(h["userMetadata"])["jobId"] for h in merges)
        twice = {job_id: n for job_id, n in commits.items() if n > 1}
        duplicated |= set(twice)
        problems += [f"job {job_id}: {n} commits to mirror {dataset.id}" for job_id, n in sorted(twice.items())]
        last = records[json.loads(max(merges, key=lambda h: h["version"])["userMetadata"])["jobId"]]
        sql = "SELECT count(*) AS n, count(DISTINCT _profileKeyId) AS k FROM d"
        [found] = pa.table(QueryBuilder().register("d", table).execute(sql)).to_pylist()
        audience = expected[segment_of(last)]
        if not found["n"] == found["k"] == audience:
            problems.append(f"mirror {dataset.id}: {found['n']} rows, {found['k']} keys; expected the "
                            f"{audience} of job {last.id}, which committed last")
    return problems, duplicated


def check_appends(config: Config, records: dict[int, JobRecord]) -> tuple[list[str], set[int], set[int], int | None]:
    """The problems of append destinations: each job must have committed exactly once, its batch holding
    the rows every job counts. Also the lost and the duplicated jobs, and the rows per job."""
    problems: list[str] = []
    lost: set[int] = set()
    duplicated: set[int] = set()
    commits, rows = destination_counts(config)
    counted = Counter(r.metrics.total_exported_profile_counter for r in records.values())
    expected = counted.most_common(1)[0][0] if counted else None
    for job_id, record in records.items():
        in_batch = rows.get(record.export_destination.batch_id or "", 0)
        if commits[job_id] != 1 or in_batch != expected:
            (lost if commits[job_id] == 0 or in_batch < (expected or 0) else duplicated).add(job_id)
            problems.append(f"job {job_id}: {commits[job_id]} commits, {in_batch} rows (expected 1, {expected})")
        if record.metrics.total_exported_profile_counter != expected:
            problems.append(f"job {job_id} counts {record.metrics.total_exported_profile_counter}, not {expected}")
    return problems, lost, duplicated, expected


def check(config: Config, store: JobStore, ids: list[int]) -> dict[str, Any]:
    """Every job SUCCEEDED, committed once, with the rows its record counts: the problems found, by job."""
    problems: list[str] = []
    records = {}
    for job_id in ids:
        try:
            records[job_id] = store.get(job_id)
        except JobNotFound:
            problems.append(f"job {job_id}: its record is lost")
    lost: set[int] = {i for i in ids if i not in records}
    problems += [f"job {job_id} is {r.status.value}: {[e.msg for e in r.errors]}" for job_id, r in records.items()
                 if r.status is not JobStatus.SUCCEEDED]
    mirrors = {d.id for d in config.destination_datasets if d.mode == "mirror"}
    to_mirror = {i: r for i, r in records.items() if r.export_destination.dataset_id in mirrors}
    found, lost_here, duplicated, expected = check_appends(
        config, {i: r for i, r in records.items() if i not in to_mirror})
    lost |= lost_here
    if to_mirror:
        found_in_mirrors, duplicated_in_mirrors = check_mirrors(config, to_mirror)
        found, duplicated = found + found_in_mirrors, duplicated | duplicated_in_mirrors
    problems += found
    return {
        "succeeded": sum(r.status is JobStatus.SUCCEEDED for r in records.values()),
        "rowsPerJob": expected,
        "runnerLostErrors": sum(e.code == "RUNNER_LOST" for r in records.values() for e in r.errors),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "problems": problems,
    }


def fault_run(run: FaultRun, lake_root: Path, work: Path) -> dict[str, Any]:
    """Create the jobs, run them under kills, check the outcome; the report."""
    started = time.monotonic()
    config = load_config(deployment(work, lake_root, run))
    store = JobStore(config.job_table_path)
    ids = [create_job(store, config, job_body(run, n), config.default_org, config.default_sandbox).id
           for n in range(run.jobs)]
    runners = Runners(Path(work, "export.toml"), work, run.runners, pace_seconds=run.lease_seconds)
    try:
        kills = inject(config, store, runners, run)
    finally:
        runners.stop()
    outcome = check(config, store, ids)
    return {
        "jobs": run.jobs, "runners": run.runners, "runnerProcesses": runners.started,
        "leaseSeconds": run.lease_seconds, "lostJobRetries": run.lost_job_retries,
        "kills": len(kills), "killsByStage": dict(Counter(map(stage_of, kills))),
        "killedJobs": len({k.job_id for k in kills}), **outcome,
        # Leases that ran out without a kill: a runner too slow to renew on a busy machine.
        "unkilledLosses": outcome["runnerLostErrors"] - len(kills),
        "wallSeconds": round(time.monotonic() - started, 1), "killLog": [asdict(k) for k in kills],
    }


def main(argv: list[str] | None = None) -> int:
    defaults = FaultRun()
    parser = argparse.ArgumentParser(prog="scripts/faults", description=__doc__.splitlines()[0])
    for name, value in asdict(defaults).items():
        if isinstance(value, bool):
            parser.add_argument("--" + name.replace("_", "-"), action="store_true", help="see the module's docstring")
        else:
            parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value,
                                help="default: %(default)s")
    parser.add_argument("--profiles", type=int, default=200,
                        help="profiles of the generated lake (default: %(default)s)")
    parser.add_argument("--lake", type=Path,
                        help="use this sample lake (made by scripts/sample_lake.py) instead of generating one")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (runner logs, tables)")
    args = parser.parse_args(argv)
    setup_logging()
    run = FaultRun(**{name: getattr(args, name) for name in asdict(defaults)})
    work = Path(tempfile.mkdtemp(prefix="export-jobs-faults-"))
    if args.lake is None:
        log.info("generating a %d-profile lake under %s", args.profiles, work / "lake")
        generate_lake(work / "lake", args.profiles)
    report = fault_run(run, args.lake or work / "lake", work)
    if args.keep:
        log.info("working folder kept: %s", work)
    else:
        shutil.rmtree(work)
    print(json.dumps(report, indent=2))
    return 0 if not report["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
