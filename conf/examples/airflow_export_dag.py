"""An Airflow DAG that runs pending segment exports on a Spark cluster every hour.

Copy it into your DAGs folder. EXPORT_JOBS_HOME is where this project is checked out on the Airflow
worker, SPARK_MASTER the cluster's master URL. `scripts/submit` builds what spark-submit ships (the
package's archive) when it is missing or stale and adds the Delta jars that match the installed
delta-spark, so nothing is built by hand and no jar name is written here.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

HOME = os.environ.get("EXPORT_JOBS_HOME", "/opt/export-jobs")
MASTER = os.environ.get("SPARK_MASTER", "spark://spark-master:7077")

with DAG(
    dag_id="segment_exports",
    start_date=datetime(2026, 1, 1),
    schedule="@hourly",
    catchup=False,
    max_active_runs=1,  # runners never run a job twice, but one run at a time is enough
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
) as dag:
    BashOperator(
        task_id="run_pending_exports",
        bash_command=f"{HOME}/scripts/submit --master {MASTER} -- --conf {HOME}/conf/export.toml run-pending --max 20",
    )
