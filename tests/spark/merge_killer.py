"""Runs one mirror job whose runner is killed (SIGKILL, its JVM too) while its MERGE writes:
`python tests/spark/merge_killer.py CONFIG JOB_ID MIRROR_PATH`. The kill lands as soon as a new data file
appears in the mirror, before the MERGE can commit it."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from jobs.control import JobStore, run_job
from jobs.spec import load_config


def data_files(mirror: Path) -> set[Path]:
    return {p for p in mirror.rglob("*.parquet") if "_delta_log" not in p.parts}


def kill_once_the_merge_writes(mirror: Path) -> None:
    before = data_files(mirror)
    while not data_files(mirror) - before:
        time.sleep(0.002)
    os.killpg(os.getpgid(0), signal.SIGKILL)


if __name__ == "__main__":
    config_path, job_id, mirror_path = sys.argv[1:4]
    threading.Thread(target=kill_once_the_merge_writes, args=(Path(mirror_path),), daemon=True).start()
    config = load_config(config_path)
    run_job(JobStore(config.job_table_path), config, int(job_id))
    sys.exit(3)  # not reached: the runner is killed
