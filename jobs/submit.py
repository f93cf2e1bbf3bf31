"""The spark-submit entry point (SPEC §8):

    spark-submit [cluster options] jobs/submit.py --conf PATH --job-id ID
    spark-submit [cluster options] jobs/submit.py --conf PATH run-pending [--max N]

It runs on the driver that spark-submit starts, with the session spark-submit
configured (master, jars, resources); the config's [spark] table fills in only
what spark-submit left unset. spark-submit merges the driver's stderr into its
stdout, so the final record(s) come as one JSON line, last (and, with
`--output PATH`, in that file).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file by spark-submit: import the package from --py-files, or from beside this file.
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from jobs.config import load_config  # noqa: E402
from jobs.model import JobStatus  # noqa: E402
from jobs.store import JobStore  # noqa: E402


def _session(config):
    """spark-submit's settings win; ours (Delta, UTC, the config's [spark]) fill the gaps."""
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    from jobs.session import BASE_CONF

    SparkContext._ensure_initialized()  # attach to the JVM spark-submit started
    submitted = SparkConf()  # what spark-submit passed, from the JVM's system properties
    _, conf = config.spark_conf()
    builder = SparkSession.builder.appName("export-jobs")
    for key, value in {**BASE_CONF, **conf}.items():
        if not submitted.contains(key):
            builder = builder.config(key, value)
    return builder.getOrCreate()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jobs/submit.py")
    parser.add_argument("--conf", required=True)
    parser.add_argument("--job-id", type=int)
    parser.add_argument("command", nargs="?", choices=["run-pending"])
    parser.add_argument("--max", type=int)
    parser.add_argument("--output", help="also write the final records as JSON to this file")
    args = parser.parse_args(argv)
    if (args.job_id is None) == (args.command is None):
        parser.error("give either --job-id ID or run-pending")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    args = parse_args(argv)
    config = load_config(args.conf)
    store = JobStore(config.job_table_path)
    from jobs.runner import run_job, run_pending

    if args.job_id is not None:
        records = [run_job(store, config, args.job_id, spark_factory=lambda: _session(config))]
    else:
        records = run_pending(store, config, args.max, spark_factory=lambda: _session(config))
    result = json.dumps([r.to_dict() for r in records])
    if args.output:
        Path(args.output).write_text(result)
    print(result, flush=True)
    return 0 if all(r.status is JobStatus.SUCCEEDED for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
