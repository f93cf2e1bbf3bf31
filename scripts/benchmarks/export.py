"""Export throughput (scripts/bench export): our export jobs beside an I/O floor, hand-written PySpark and DuckDB.

One generated lake (scripts/sample_lake.py: every profile in profiles_0, about half of them again
in the later profiles_1, 20 segments, 0-3 memberships per fragment, 10 events per
profile) and one SparkSession (local[2]) for every Spark run. Each figure is the median
of --runs warm runs after one warm-up run; the runs go in rounds (one run of every figure
per round), so that a change in the machine's load touches every figure alike:

  ours         export jobs made with create_job and run with run_job, each run to a fresh
               destination; the figure is the record's profileExportTime
  per-segment  the 20-segment job with segmentPerBatch true
  I/O floor    plain Spark reading the same fragment tables and writing the same columns,
               with no merge and no filter
  hand-written the same 1- and 20-segment exports written by hand for this lake as one PySpark job;
  PySpark      its set of exported profile keys is checked against ours
  DuckDB       the same export as one SQL statement over the tables' Parquet files, written
               to Parquet; its set of exported profile keys is checked against ours
  overhead     run_job's wall time minus profileExportTime: claim, plan, record writes

  stitching   the 20-segment export under identityGraph none and pdg on a linked lake (people's
               identities spread over their fragments), at --profiles and at every scaling size

`--quick` is for A/B work while changing the engine: 200k profiles, one run of each figure, and
its report under .cache/bench rather than over docs/benchmarks-report.md.

`--scaling SIZES` also runs our 1- and 20-segment exports at each size (lakes without
events) and records time per profile and the driver's peak memory. It writes
docs/benchmarks-report.md and a chart beside it, and prints the ratios against their targets last.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from benchmarks.lake import make_lake
from benchmarks.report import draw, kept_section, ratio_lines, report
from benchmarks.rounds import parse_size, parse_sizes, say
from benchmarks.runs import compare, scale_point
from benchmarks.scaling import HEADING as SCALING
from benchmarks.settings import DEFAULT_SCALING, MASTER, SPARK_CONF, STITCH_PROFILES
from benchmarks.stitching import stitch_point
from jobs.engine import build_session

ROOT = Path(__file__).resolve().parents[2]
QUICK_PROFILES = 200_000
QUICK_OUT = ".cache/bench/quick-report.md"  # an A/B run leaves the committed report alone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench export", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"A/B mode: {QUICK_PROFILES:,} profiles, 1 run, the report in {QUICK_OUT} "
                             "(flags given beside it win)")
    parser.add_argument("--profiles", type=parse_size,
                        help="profiles in the lake, e.g. 20000, 250k, 1M (default: 1M)")
    parser.add_argument("--runs", type=int, help="measured runs per figure (default: 3)")
    parser.add_argument("--scaling", type=parse_sizes, nargs="?", const=parse_sizes(DEFAULT_SCALING),
                        metavar="SIZES", help=f"also time our export at these sizes (default: {DEFAULT_SCALING})")
    parser.add_argument("--out", type=Path,
                        help="the report; the chart is written beside it as .png (default: docs/benchmarks-report.md)")
    args = parser.parse_args(argv)
    args.profiles = args.profiles or (QUICK_PROFILES if args.quick else 1_000_000)
    args.runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    args.out = args.out or ROOT / (QUICK_OUT if args.quick else "docs/benchmarks-report.md")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = build_session(MASTER, "export-jobs-bench", SPARK_CONF)
    spark.sparkContext.setLogLevel("ERROR")
    with tempfile.TemporaryDirectory(prefix="export-jobs-bench-") as tmp:
        lake = make_lake(spark, Path(tmp) / "lake", args.profiles, events=True)
        stitching = [stitch_point(spark, Path(tmp), size, args.runs)
                     for size in dict.fromkeys([min(args.profiles, STITCH_PROFILES), *(args.scaling or ())])]
        result = compare(spark, lake, args.runs, stitching)
        scaling = [scale_point(spark, Path(tmp), size, args.runs) for size in args.scaling or ()]
        chart = args.out.with_suffix(".png")
        draw(result, scaling, args.profiles, chart)
        # The SCALING section comes from scripts/bench scaling (a cluster run): keep it.
        args.out.write_text(report(args, spark, lake, result, scaling, chart) + kept_section(args.out, SCALING))
    spark.stop()
    say(f"wrote {args.out} and {chart}")
    print("\n".join(ratio_lines(result)))
    return 0 if all(k.equal for k in result.keys) else 1


if __name__ == "__main__":
    sys.exit(main())
