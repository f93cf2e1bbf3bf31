"""Small jobs (scripts/bench small): the fixed cost of an export, warm and cold, beside an I/O floor.

One generated lake of --profiles (default 5,000, with events) and a 1-segment export job.

  warm   in one session, as `serve` and `run-pending` run jobs: run_job's wall time (claim,
         plan, export, record) beside the I/O floor (benchmarks/floor.py) in the same session.
  warm, incremental
         the same job with a watermark (filter.fromIngestTimestamp, as an hourly incremental schedule
         sets it) older than every fragment, so that it exports the same rows: what a watermark adds.
  cold   a whole `export-jobs run ID` process, interpreter and JVM start included, beside a
         cold floor process: the same interpreter starting Spark with the same jars and settings
         (jobs.engine.session_for over the same config), reading the same profile datasets and
         writing them to Delta. No absolute time is a target: machines differ up to 5x in speed.
  cold, no class archive
         the same `run` process with its JVM started without the driver's class archive
         (jobs/engine/class_archive.py), when one was built: what the archive saves.

Every run writes to a destination of its own; the runs go in rounds (benchmarks/rounds.py).
Prints the figures and the two ratios against their targets; `--out` also writes them as Markdown.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.floor import run_floor
from benchmarks.lake import Lake, make_lake, table_stats
from benchmarks.memory import PeakMemory
from benchmarks.ours import job_body, run_ours
from benchmarks.rounds import Figure, Sample, Scenario, interleave, parse_size, say
from benchmarks.settings import DESTINATION_ID
from jobs.control import JobStore, create_job
from jobs.engine import archive_options, session_for
from jobs.spec import load_config
from sample_lake import LakeSpec, sample_config

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"warm: ours / floor": 2.0, "cold: ours / floor (whole process)": 1.5}


# Older than every fragment of the sample lake: an incremental job that exports what the plain one does.
WATERMARK = "2000-01-01T00:00:00Z"


def _warm_ours(spark: SparkSession, lake: Lake, name: str, incremental: bool = False) -> Sample:
    body = job_body(1)
    if incremental:
        body["filter"]["fromIngestTimestamp"] = WATERMARK
    sample = run_ours(spark, lake, body, PeakMemory(spark), name)
    # The figure is the user's wait: run_job's wall time, record writes included.
    return Sample(sample.seconds + (sample.overhead_s or 0.0), sample.rows, sample.output, sample.overhead_s)


def _timed(command: list[str]) -> float:
    """The wall time of a process that must succeed; its output is shown only if it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return time.perf_counter() - started


def _cold_ours(lake: Lake, name: str, class_archive: bool = True) -> Sample:
    config = lake.deployment(name)
    if not class_archive:  # the JVM's own sharing options keep the archive out (-Xshare:auto is the default)
        conf = lake.config_file(name)
        own = '"spark.driver.extraJavaOptions" = "-Xshare:auto"'
        conf.write_text(conf.read_text().replace("[spark]\n", f"[spark]\n{own}\n"))
    record = create_job(JobStore(config.job_table_path), config, job_body(1), config.default_org,
                        config.default_sandbox)
    seconds = _timed([sys.executable, "-m", "jobs", "--conf", str(lake.config_file(name)), "run", str(record.id)])
    destination = config.destination(DESTINATION_ID)
    assert destination is not None
    path = config.resolve(destination.path)
    return Sample(seconds, table_stats(path)[0], path)


def _cold_floor(lake: Lake, name: str) -> Sample:
    lake.deployment(name)  # the same config file as a cold run of ours
    seconds = _timed([sys.executable, "-m", "benchmarks.small", "floor-process", str(lake.config_file(name)),
                      str(lake.root), name])
    path = str(lake.root / "runs" / name)
    return Sample(seconds, table_stats(path)[0], path)


def floor_process(conf: Path, root: Path, name: str) -> int:
    """The cold floor: a process that starts Spark as `run` would and copies the profile datasets."""
    config = load_config(conf)
    spark = session_for(config, "export-jobs-floor")
    lake = Lake(root, LakeSpec(), 0, 0.0)  # only its profile paths are read
    run_floor(spark, lake, name)
    return 0


def ratio(figures: dict[str, Figure], a: str, b: str) -> float:
    return figures[a].median / figures[b].median


def report(profiles: int, runs: int, figures: dict[str, Figure]) -> str:
    lines = [f"## Small jobs ({profiles:,} profiles, 1 segment, median of {runs} runs)", "",
             "| figure | median (s) | runs (s) |", "|---|---:|---|"]
    lines += [f"| {f.name} | {f.median:.2f} | {', '.join(f'{s:.2f}' for s in f.seconds)} |" for f in figures.values()]
    lines += ["", "| ratio | measured | target |", "|---|---:|---:|"]
    for (name, limit), value in zip(TARGETS.items(), measured(figures), strict=True):
        lines.append(f"| {name} | {value:.2f} | ≤ {limit} |")
    if "warm_incremental" in figures:
        lines.append(f"| warm: incremental / plain | {ratio(figures, 'warm_incremental', 'warm'):.2f} | — |")
    if "cold_unshared" in figures:
        lines.append(f"| cold: with / without the class archive | {ratio(figures, 'cold', 'cold_unshared'):.2f} | — |")
    return "\n".join(lines) + "\n"


def measured(figures: dict[str, Figure]) -> list[float]:
    return [ratio(figures, "warm", "warm_floor"), ratio(figures, "cold", "cold_floor")]


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["floor-process"]:
        return floor_process(Path(args_in[1]), Path(args_in[2]), args_in[3])
    parser = argparse.ArgumentParser(prog="scripts/bench small", description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=parse_size, default=5_000, help="profiles in the lake (default: 5000)")
    parser.add_argument("--runs", type=int, default=5, help="measured runs per figure (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="also write the figures as Markdown here")
    args = parser.parse_args(args_in)
    with tempfile.TemporaryDirectory(prefix="export-jobs-small-") as tmp:
        root = Path(tmp) / "lake"
        # The warm session is the one `run` would start over the lake's config.
        session_conf = Path(tmp) / "session.toml"
        session_conf.write_text(sample_config(root, event_datasets=1))
        spark = session_for(load_config(session_conf), "export-jobs-small")
        spark.sparkContext.setLogLevel("ERROR")
        lake = make_lake(spark, root, args.profiles, events=True)
        figures = interleave([
            Scenario("warm", "ours, warm session (run_job wall time)", "ours",
                     lambda run: _warm_ours(spark, lake, run)),
            Scenario("warm_floor", "I/O floor, warm session", "floor", lambda run: run_floor(spark, lake, run)),
            Scenario("warm_incremental", "ours, warm session, incremental (run_job wall time)", "ours",
                     lambda run: _warm_ours(spark, lake, run, incremental=True)),
            Scenario("cold", "ours, cold process (export-jobs run)", "ours", lambda run: _cold_ours(lake, run)),
            Scenario("cold_floor", "I/O floor, cold process", "floor", lambda run: _cold_floor(lake, run)),
            *([Scenario("cold_unshared", "ours, cold process without the class archive", "ours",
                        lambda run: _cold_ours(lake, run, class_archive=False))] if archive_options("") else []),
        ], args.runs)
        spark.stop()
    text = report(args.profiles, args.runs, figures)
    if args.out is not None:
        args.out.write_text(text)
        say(f"wrote {args.out}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
