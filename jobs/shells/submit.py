"""The spark-submit entry point (docs/operations.md#spark-submit):

    spark-submit [cluster options] jobs/submit.py --conf PATH --job-id ID
    spark-submit [cluster options] jobs/submit.py --conf PATH run-pending [--max N]

(jobs/submit.py, the file spark-submit is given, calls `main` here.)

It runs on the driver that spark-submit starts, with the session spark-submit
configured (master, jars, resources); the required settings, the tuning kept for
clusters and the config's [spark] table fill in only what spark-submit left unset
(docs/operations.md#spark-settings-embedded-and-under-spark-submit). spark-submit merges the driver's stderr into its
stdout, so the final record(s) come as one JSON line, last (and, with
`--output PATH`, in that file).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jobs.control import JobStore, deliver_before_exit, job_event_recorder
from jobs.shells.logs import setup_logging
from jobs.spec import EXIT_FAILED, JobStatus, load_config


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
    setup_logging()
    args = parse_args(argv)
    config = load_config(args.conf)
    setup_logging(config.log_format)
    store = JobStore(config.job_table_path, job_event_recorder(config))
    from jobs.control import deployment_session, run_job, run_pending

    spark = deployment_session(config)  # spark-submit's settings win (jobs.engine.session.session_for)
    if args.job_id is not None:
        records = [run_job(store, config, args.job_id, spark_factory=spark)]
    else:
        records = run_pending(store, config, args.max, spark_factory=spark)
    deliver_before_exit(config)
    result = json.dumps([r.to_dict() for r in records])
    if args.output:
        Path(args.output).write_text(result)
    print(result, flush=True)
    return 0 if all(r.status is JobStatus.SUCCEEDED for r in records) else EXIT_FAILED
