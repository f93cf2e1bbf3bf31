"""An Airflow DAG that runs pending segment exports on a Spark cluster every hour.

Copy it into your DAGs folder; it needs apache-airflow-providers-apache-spark and a
`spark_default` connection pointing at your master. EXPORT_JOBS_HOME is where this
project is checked out (with ./scripts/setup run once) on the Airflow worker.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

HOME = os.environ.get("EXPORT_JOBS_HOME", "/opt/export-jobs")
CONF = f"{HOME}/conf/export.toml"

with DAG(
    dag_id="segment_exports",
    start_date=datetime(2026, 1, 1),
    schedule="@hourly",
    catchup=False,
    max_active_runs=1,  # runners never run a job twice, but one run at a time is enough
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
) as dag:
    SparkSubmitOperator(
        task_id="run_pending_exports",
        application=f"{HOME}/jobs/submit.py",
        application_args=["--conf", CONF, "run-pending", "--max", "20"],
        py_files=f"{HOME}/build/export-jobs.zip",
        jars=f"{HOME}/.cache/jars/delta-spark_4.2_2.13-4.4.0.jar,{HOME}/.cache/jars/delta-storage-4.4.0.jar",
        conn_id="spark_default",
        deploy_mode="client",
        env_vars={"PYSPARK_PYTHON": f"{HOME}/.venv/bin/python",
                  "PYSPARK_DRIVER_PYTHON": f"{HOME}/.venv/bin/python"},
    )
