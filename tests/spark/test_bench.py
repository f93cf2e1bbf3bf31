"""The export benchmark's pieces on a tiny lake (scripts/bench export runs them at 1M).

DuckDB's SQL and the hand-written PySpark job are independent implementations of
the merge and the segment filter: they must select exactly the profiles our export
does, or the benchmark compares different work. The hand-written job must write
the same rows too.
"""

from __future__ import annotations

import duckdb
import pytest
from deltalake import DeltaTable

from benchmarks.duck import compare_keys, run_duckdb
from benchmarks.floor import run_events_floor, run_floor
from benchmarks.handwritten import run_handwritten
from benchmarks.lake import make_lake, table_stats
from benchmarks.memory import PeakMemory
from benchmarks.ours import define_segments, evaluated_segments_body, job_body, run_ours, written_back
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
        check = compare_keys(con, "ours", ours.output, "duckdb", duck.output)
    finally:
        con.close()
    assert ours.rows > 0
    assert (check.ours, check.other, check.only_ours, check.only_other) == (ours.rows, duck.rows, 0, 0)
    assert ours.overhead_s is not None and ours.overhead_s >= 0


def _rows(output: str) -> list[str]:
    """Every exported row but its batch id, with its maps' entries sorted (their order is not the export's)."""
    rows = []
    for row in DeltaTable(output).to_pyarrow_table().to_pylist():
        del row["_batchId"]
        row["identityMap"] = sorted((ns, sorted((i["id"], i["primary"]) for i in ids))
                                    for ns, ids in row["identityMap"])
        row["segmentMembership"] = sorted((ns, sorted(members)) for ns, members in row["segmentMembership"])
        rows.append(repr(sorted(row.items())))
    return sorted(rows)


@pytest.mark.parametrize("segments", [1, SEGMENTS])
def test_the_hand_written_pyspark_job_writes_the_same_rows_as_ours(spark, bench_lake, segments):
    ours = run_ours(spark, bench_lake, job_body(segments), PeakMemory(spark), f"ours-hand-{segments}")
    hand = run_handwritten(spark, bench_lake, segments, f"hand-{segments}")
    con = duckdb.connect()
    try:
        check = compare_keys(con, "ours", ours.output, "hand-written", hand.output)
    finally:
        con.close()
    assert ours.rows > 0
    assert (check.ours, check.other, check.only_ours, check.only_other) == (ours.rows, hand.rows, 0, 0)
    assert _rows(hand.output) == _rows(ours.output)


def test_the_io_floor_writes_every_fragment(spark, bench_lake):
    sample = run_floor(spark, bench_lake, "floor")
    fragments = sum(table_stats(path)[0] for path in bench_lake.profile_paths)
    assert sample.rows == fragments


def test_the_events_floor_writes_one_row_per_key_with_its_events_in_time_order(spark, tmp_path):
    lake = make_lake(spark, tmp_path / "lake", 30, events=True)
    sample = run_events_floor(spark, lake, "events-floor")
    rows = DeltaTable(sample.output).to_pyarrow_table().to_pylist()
    assert sample.rows == len(rows) == len({(r["ns"], r["id"]) for r in rows}) == 30
    assert sum(len(r["events"]) for r in rows) == sum(table_stats(path)[0] for path in lake.event_paths)
    assert all([e["timestamp"] for e in r["events"]] == sorted(e["timestamp"] for e in r["events"]) for r in rows)


def _exported(output: str) -> list[tuple[str, tuple[str, ...]]]:
    """Each exported row's identities and the statuses of its memberships, sorted."""
    rows = DeltaTable(output).to_pyarrow_table(columns=["identityMap", "segmentMembership"]).to_pylist()

    def statuses(row: dict) -> tuple[str, ...]:
        return tuple(sorted(f"{s}={m['status']}" for s, m in dict(row["segmentMembership"])["ups"]))

    return sorted((str(sorted(r["identityMap"])), statuses(r)) for r in rows)


def test_written_back_memberships_export_what_the_evaluation_exports(spark, tmp_path):
    """The evaluation target's baseline, the same job with evaluation off: the same segments,
    exported from what one evaluation wrote back, selects the same profiles and memberships."""
    lake = make_lake(spark, tmp_path / "lake", 400, events=True)
    memory = PeakMemory(spark)
    ids = define_segments(lake.deployment("definitions"))
    evaluated, memberships = written_back(spark, lake, memory, ids)
    exported = run_ours(spark, lake, evaluated_segments_body(ids), memory, "written-back-export", memberships)
    assert evaluated.rows > 0
    assert exported.rows == evaluated.rows
    assert _exported(exported.output) == _exported(evaluated.output)
