"""Runs one job whose runner kills itself (SIGKILL, its JVM too) while its mirror MERGE runs:
`python tests/spark/merge_killer.py CONFIG JOB_ID`. The kill lands once the MERGE has started a Spark job."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import jobs.engine.mirror as mirror
from jobs.control import JobStore, run_job
from jobs.spec import load_config


def dying(merge):
    def merge_and_die(spark, rows, plan):
        tracker = spark.sparkContext.statusTracker()

        def kill_when_busy() -> None:
            while not tracker.getActiveJobsIds():
                time.sleep(0.005)
            time.sleep(0.2)
            os.killpg(os.getpgid(0), signal.SIGKILL)

        threading.Thread(target=kill_when_busy, daemon=True).start()
        merge(spark, rows, plan)
        time.sleep(60)  # a MERGE faster than the kill has committed: the kill still lands before the record
    return merge_and_die


if __name__ == "__main__":
    mirror._merge = dying(mirror._merge)
    config = load_config(sys.argv[1])
    run_job(JobStore(config.job_table_path), config, int(sys.argv[2]))
    sys.exit(3)  # not reached: the runner is killed
