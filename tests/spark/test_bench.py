"""The export benchmark's pieces on a tiny lake (scripts/bench export runs them at 1M).

DuckDB's SQL is an independent implementation of the merge and the segment
filter: it must select exactly the profiles our export does, or the benchmark
compares different work.
"""

from __future__ import annotations

import duckdb
import pytest

from benchmarks.duck import compare_keys, run_duckdb
from benchmarks.floor import run_floor
from benchmarks.lake import make_lake, table_stats
from benchmarks.memory import PeakMemory
from benchmarks.ours import job_body, run_ours
from benchmarks.settings import SEGMENTS

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def bench_lake(spark, tmp_path_factory):
    return make_lake(spark, tmp_path_factory.mktemp("bench") / "lake", 400, events=False)


@pytest.mark.parametrize("segments", [1, SEGMENTS])
def test_duckdb_baseline_exports_the_same_profiles_as_ours(spark, bench_lake, segments):
    memory = PeakMemory(spark)
    ours = run_ours(spark, bench_lake, job_body(segments), memory, f"ours-{segments}")
    con = duckdb.connect()
    try:
        duck = run_duckdb(con, bench_lake, segments, f"duck-{segments}")
        check = compare_keys(con, "ours", ours.output, duck.output)
    finally:
        con.close()
    assert ours.rows > 0
    assert (check.ours, check.duckdb, check.only_ours, check.only_duckdb) == (ours.rows, duck.rows, 0, 0)
    assert ours.overhead_s is not None and ours.overhead_s >= 0


def test_the_io_floor_writes_every_fragment(spark, bench_lake):
    sample = run_floor(spark, bench_lake, "floor")
    fragments = sum(table_stats(path)[0] for path in bench_lake.profile_paths)
    assert sample.rows == fragments
