"""Spark's task metrics of one job group, read from the application's event log.

A session started with `event_log_conf(folder)` writes every listener event as a JSON line
into `folder` (uncompressed), as it would for a history server. Spark flushes
the log at each job's end, so once the group's jobs have all ended, every task of theirs is
in it: no SparkListener in the driver, nothing but the file, and it works the same for a
driver that has already exited (a spark-submit run).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

WAIT_S = 30


def event_log_conf(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return {"spark.eventLog.enabled": "true", "spark.eventLog.dir": folder.as_uri(),
            "spark.eventLog.compress": "false"}


@dataclass
class StageMetrics:
    stage_id: int
    name: str = ""
    tasks: int = 0
    run_ms: int = 0  # executor run time, summed over tasks
    cpu_ms: float = 0.0
    input_bytes: int = 0
    shuffle_read_bytes: int = 0
    remote_read_bytes: int = 0  # shuffle blocks fetched from another executor
    shuffle_write_bytes: int = 0
    spill_memory_bytes: int = 0
    spill_disk_bytes: int = 0
    peak_task_memory_bytes: int = 0  # the largest peak execution memory of one task
    output_bytes: int = 0
    output_rows: int = 0
    wall_ms: int = 0  # from the stage's submission to its completion

    def add(self, metrics: dict) -> None:
        read, write = metrics.get("Shuffle Read Metrics", {}), metrics.get("Shuffle Write Metrics", {})
        self.tasks += 1
        self.run_ms += metrics.get("Executor Run Time", 0)
        self.cpu_ms += metrics.get("Executor CPU Time", 0) / 1e6
        self.input_bytes += metrics.get("Input Metrics", {}).get("Bytes Read", 0)
        self.remote_read_bytes += read.get("Remote Bytes Read", 0)
        self.shuffle_read_bytes += read.get("Remote Bytes Read", 0) + read.get("Local Bytes Read", 0)
        self.shuffle_write_bytes += write.get("Shuffle Bytes Written", 0)
        self.spill_memory_bytes += metrics.get("Memory Bytes Spilled", 0)
        self.spill_disk_bytes += metrics.get("Disk Bytes Spilled", 0)
        self.peak_task_memory_bytes = max(self.peak_task_memory_bytes, metrics.get("Peak Execution Memory", 0))
        self.output_bytes += metrics.get("Output Metrics", {}).get("Bytes Written", 0)
        self.output_rows += metrics.get("Output Metrics", {}).get("Records Written", 0)


@dataclass
class GroupMetrics:
    """The stages of one job group's Spark jobs, in the order they ran."""

    stages: list[StageMetrics] = field(default_factory=list)

    def total(self, name: str) -> int | float:
        return sum(getattr(s, name) for s in self.stages)

    def peak_task_memory_bytes(self) -> int:
        return max((s.peak_task_memory_bytes for s in self.stages), default=0)

    @property
    def tasks(self) -> int:
        return int(self.total("tasks"))


def event_log(folder: Path, application_id: str) -> list[Path]:
    """The files of an application's event log, in order: Spark 4 rolls it (a folder
    eventlog_v2_<id> of events_<n>_<id> files); a log that does not roll is one file
    (<id>, or <id>.inprogress while the application runs)."""
    rolled = folder / f"eventlog_v2_{application_id}"
    if rolled.is_dir():
        return sorted(rolled.glob("events_*"), key=lambda path: int(path.name.split("_")[1]))
    found = sorted(folder.glob(f"{application_id}*"))
    if not found:
        raise FileNotFoundError(f"no event log of {application_id} in {folder}")
    return found[:1]


def events(folder: Path, application_id: str) -> list[dict]:
    found = []
    for path in event_log(folder, application_id):
        for line in path.read_text().splitlines():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:  # the last line of a log still being written
                break
    return found


def _group(event: dict) -> str:
    return (event.get("Properties") or {}).get("spark.jobGroup.id") or ""


def latest_group(folder: Path, application_id: str, prefix: str) -> str:
    """The job group, of those whose name starts with `prefix`, that started a Spark job last."""
    groups = [_group(e) for e in events(folder, application_id) if e["Event"] == "SparkListenerJobStart"]
    matching = [g for g in groups if g.startswith(prefix)]
    if not matching:
        raise LookupError(f"no job group {prefix}* in the event log of {application_id}")
    return matching[-1]


def _group_jobs(logged: list[dict], group: str) -> tuple[dict[int, list[int]], set[int]]:
    """(job id -> its stage ids, ended job ids) for the Spark jobs of a job group."""
    jobs, ended = {}, set()
    for event in logged:
        if event["Event"] == "SparkListenerJobStart" and _group(event) == group:
            jobs[event["Job ID"]] = event["Stage IDs"]
        elif event["Event"] == "SparkListenerJobEnd":
            ended.add(event["Job ID"])
    return jobs, ended


def group_metrics(folder: Path, application_id: str, group: str, wait_s: float = WAIT_S) -> GroupMetrics:
    """The successful tasks' metrics per stage for the Spark jobs of a job group (waits until they have ended)."""
    deadline = time.monotonic() + wait_s
    while True:
        logged = events(folder, application_id)
        jobs, ended = _group_jobs(logged, group)
        if jobs and set(jobs) <= ended:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the event log of {application_id} has no ended jobs of group {group}")
        time.sleep(0.5)
    wanted = {stage for stages in jobs.values() for stage in stages}
    stages: dict[int, StageMetrics] = {}
    for event in logged:
        kind = event["Event"]
        if kind == "SparkListenerTaskEnd" and event["Stage ID"] in wanted \
                and event.get("Task End Reason", {}).get("Reason") == "Success":
            stages.setdefault(event["Stage ID"], StageMetrics(event["Stage ID"])).add(event.get("Task Metrics", {}))
        elif kind == "SparkListenerStageCompleted" and event["Stage Info"]["Stage ID"] in stages:
            info, stage = event["Stage Info"], stages[event["Stage Info"]["Stage ID"]]
            stage.name, stage.wall_ms = info["Stage Name"], info["Completion Time"] - info["Submission Time"]
    return GroupMetrics([stages[s] for s in sorted(stages)])
