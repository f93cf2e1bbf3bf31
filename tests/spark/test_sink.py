"""The destination sink: jobs racing to create and append to one new Delta table all commit."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from deltalake import DeltaTable

from jobs.engine import write_batches

from .helpers import make_plan, schema_of

pytestmark = pytest.mark.spark


def test_jobs_writing_a_new_destination_at_once_all_commit(spark, tmp_path):
    destination = str(tmp_path / "out")
    plans = [replace(make_plan(schema_of(spark)), job_id=n, destination_path=destination, txn_app_id=f"job-{n}")
             for n in range(4)]
    start, failures = threading.Barrier(len(plans)), []

    def write(plan) -> None:
        rows = spark.createDataFrame([(f"batch-{plan.job_id}",)], "_batchId string")
        start.wait()
        try:
            write_batches(rows, plan)
        except Exception as err:  # the assertion below shows which
            failures.append(err)

    threads = [threading.Thread(target=write, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    table = DeltaTable(destination)
    assert sorted(table.to_pyarrow_table()["_batchId"].to_pylist()) == [f"batch-{n}" for n in range(4)]
    assert len(table.history()) == 4  # one commit per job
