"""A benchmark session on a standalone cluster, set up as a spark-submit driver's would be.

Two workers of one core each, one executor on each, so that the export's shuffle
crosses JVMs; the driver is this process (client mode). The session has the settings
`jobs.engine.session` gives a driver under spark-submit: the required ones and
SUBMITTED_TUNING, and Spark's defaults for the rest of the embedded tuning.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.memory import jvm
from benchmarks.standalone import Cluster
from benchmarks.tasks import event_log_conf
from jobs.engine import EMBEDDED_TUNING, SUBMITTED_TUNING, build_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

WORKERS = 2
WORKER_CORES = 1
WORKER_MEMORY = "3g"
EXECUTOR_MEMORY = "2g"
DRIVER_MEMORY = "2g"


# Executors on one host read each other's shuffle files from disk; on a cluster's separate
# hosts they fetch them from each other: do that here too.
ACROSS_HOSTS = {"spark.shuffle.readHostLocalDisk": "false"}


def executor_conf() -> dict[str, str]:
    return {"spark.executor.memory": EXECUTOR_MEMORY, "spark.executor.cores": str(WORKER_CORES),
            "spark.cores.max": str(WORKERS * WORKER_CORES), "spark.driver.memory": DRIVER_MEMORY, **ACROSS_HOSTS}


def as_submitted(spark: SparkSession) -> None:
    """Spark's defaults for the embedded tuning, then the tuning kept under spark-submit."""
    for key in EMBEDDED_TUNING:
        spark.conf.unset(key)
    for key, value in SUBMITTED_TUNING.items():
        spark.conf.set(key, value)


def cluster_session(cluster: Cluster, app_name: str, event_logs: Path) -> SparkSession:
    """A session on the cluster as under spark-submit, with an event log in `event_logs`."""
    spark = build_session(cluster.url, app_name, {**executor_conf(), **event_log_conf(event_logs)})
    spark.sparkContext.setLogLevel("ERROR")
    as_submitted(spark)
    return spark


def forget_delta_state(spark: SparkSession) -> None:
    """Drops Delta's cached table snapshots, so that a run rebuilds them as a fresh driver does."""
    jvm(spark).org.apache.spark.sql.delta.DeltaLog.clearCache()
