"""A job's Spark work as one Spark job group: run in it, cancel it, watch its progress."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession


class SparkJobGroup:
    def __init__(self, spark: SparkSession, job_id: int):
        self.context = spark.sparkContext
        self.job_id = job_id
        self.name = f"export-job-{job_id}-{uuid.uuid4().hex[:8]}"

    @property
    def application_id(self) -> str:
        return self.context.applicationId

    @contextmanager
    def running(self) -> Iterator[None]:
        """Spark jobs started by this thread inside the block belong to the group."""
        self.context.setJobGroup(self.name, f"export job {self.job_id}", interruptOnCancel=True)
        try:
            yield
        finally:
            self.context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]

    def cancel(self) -> None:
        """Stops the group's running Spark jobs (not the ones it starts later)."""
        self.context.cancelJobGroup(self.name)

    def progress(self) -> str | None:
        """'exporting: 12/40 tasks' from Spark's status tracker, for the record's stage."""
        tracker = self.context.statusTracker()
        done = total = 0
        for job in tracker.getJobIdsForGroup(self.name):
            info = tracker.getJobInfo(job)
            for stage_id in info.stageIds if info else ():
                stage = tracker.getStageInfo(stage_id)
                if stage:
                    done, total = done + stage.numCompletedTasks, total + stage.numTasks
        return f"exporting: {done}/{total} tasks" if total else None
