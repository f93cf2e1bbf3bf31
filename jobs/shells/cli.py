"""`export-jobs` (and `python -m jobs`): JSON results on stdout, logs on stderr (docs/reference/cli.md).

Exit codes: 0 success, 1 a job that ended FAILED or CANCELLED, 2 bad usage or a
rejected request (every `ExportJobsError` says which, and prints its problem document).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.control import (
    JobStore,
    ScheduleStore,
    SegmentStore,
    cancel_job,
    create_job,
    create_schedule,
    create_segment,
    delete_segment,
    evaluations_of,
    list_jobs,
    list_segments,
    update_segment,
)
from jobs.shells.logs import setup_logging
from jobs.shells.peek import peek
from jobs.spec import (
    EXIT_FAILED,
    EXIT_REJECTED,
    Config,
    ConfigError,
    ExportJobsError,
    JobStatus,
    RequestRejected,
    load_config,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("export-jobs")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export-jobs", description="Segment export jobs on Spark and Delta.")
    parser.add_argument("--conf", default="conf/export.toml", help="config file (default: %(default)s)")
    parser.add_argument("--org", help="IMS org (default: the config's defaultOrg)")
    parser.add_argument("--sandbox", help="sandbox (default: the config's defaultSandbox)")
    parser.add_argument("--verbose", action="store_true",
                        help="Spark's own start-up messages and warnings on stderr (default: its errors only)")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a job from a JSON definition")
    create.add_argument("file", help="definition file, or - for standard input")
    for name, text in (("get", "show a job"), ("run", "run a NEW job now, on the configured Spark master"),
                       ("cancel", "cancel a NEW or running job")):
        commands.add_parser(name, help=text).add_argument("id", type=int)
    schedule = commands.add_parser("schedule", help="recurring exports").add_subparsers(dest="action", required=True)
    schedule.add_parser("create", help='create from {"cron", "incremental", "job"} JSON').add_argument(
        "file", help="schedule file, or - for standard input")
    schedule.add_parser("list", help="list schedules")
    schedule.add_parser("delete", help="delete a schedule").add_argument("id")
    segment = commands.add_parser("segment", help="segment definitions (PQL)").add_subparsers(
        dest="action", required=True)
    segment.add_parser("create", help="create from a definition's JSON").add_argument(
        "file", help="definition file, or - for standard input")
    listed = segment.add_parser("list", help="list definitions, newest first")
    listed.add_argument("--limit", type=int, default=50)
    listed.add_argument("--offset", help="cursor {creationTime}_{id} from a previous page")
    segment.add_parser("get", help="show a definition").add_argument("id")
    update = segment.add_parser("update", help="change name, description, expression or mergePolicyId")
    update.add_argument("id")
    update.add_argument("file", help="a partial definition's JSON, or - for standard input")
    segment.add_parser("delete", help="delete a definition no other one uses").add_argument("id")
    pending = commands.add_parser("run-pending", help="take back lost jobs, then run NEW jobs oldest first")
    pending.add_argument("--max", type=int, help="run at most this many jobs")
    listing = commands.add_parser("list", help="list jobs, newest first")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", help="cursor {creationTime}_{id} from a previous page")
    listing.add_argument("--status", choices=[s.value for s in JobStatus])
    peeking = commands.add_parser("peek", help="print a few of a job's exported rows and check their count")
    peeking.add_argument("--limit", type=int, default=3, help="rows to print (default: %(default)s)")
    peeking.add_argument("id", type=int)
    serve = commands.add_parser("serve", help="serve the HTTP API on /export/jobs")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    serve.add_argument("--no-runner", action="store_true",
                       help="only serve the API; leave NEW jobs to other runners (run-pending)")
    return parser


def _emit(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _read(file: str) -> str:
    try:
        return sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as err:
        raise RequestRejected.at("file", f"cannot read {file}: {err.strerror or err}") from None


@dataclass(frozen=True)
class Call:
    """One command line: its arguments, the deployment, and the tenant it acts for."""

    args: argparse.Namespace
    config: Config
    org: str
    sandbox: str

    @property
    def jobs(self) -> JobStore:
        return JobStore(self.config.job_table_path)

    def session(self, app_name: str) -> SparkSession:
        """The configured session, with Spark's progress bar when a person watches stderr."""
        from jobs.engine import session_for

        progress = {"spark.ui.showConsoleProgress": "true"} if sys.stderr.isatty() else {}
        return session_for(self.config, app_name, progress, self.args.verbose)


# The commands that run jobs load Spark (through the runner) when they run; the others never do.


def _serve(call: Call) -> int:
    from jobs.control import RunnerLoop, deployment_session
    from jobs.shells.http import serve  # FastAPI and uvicorn only load for the server

    loop = None if call.args.no_runner else RunnerLoop(
        call.jobs, call.config, spark_factory=deployment_session(call.config, call.args.verbose))
    serve(call.config, call.args.host, call.args.port,
          on_startup=loop.start if loop else None, on_shutdown=loop.stop if loop else None)
    return 0


def _create(call: Call) -> int:
    _emit(create_job(call.jobs, call.config, _read(call.args.file), call.org, call.sandbox).to_dict())
    return 0


def _get(call: Call) -> int:
    _emit(call.jobs.get(call.args.id, call.org, call.sandbox).to_dict())
    return 0


def _list(call: Call) -> int:
    status = JobStatus(call.args.status) if call.args.status else None
    _emit(list_jobs(call.jobs, call.org, call.sandbox, call.args.limit, call.args.offset, status))
    return 0


def _cancel(call: Call) -> int:
    _emit(cancel_job(call.jobs, call.args.id, call.org, call.sandbox).to_dict())
    return 0


def _run(call: Call) -> int:
    from jobs.control import run_job

    job_id = call.args.id
    call.jobs.get(job_id, call.org, call.sandbox)  # another tenant's job is not found
    record = run_job(call.jobs, call.config, job_id, spark_factory=lambda: call.session(f"export-job-{job_id}"))
    _emit(record.to_dict())
    return 0 if record.status is JobStatus.SUCCEEDED else EXIT_FAILED


def _run_pending(call: Call) -> int:
    from jobs.control import run_pending

    records = run_pending(call.jobs, call.config, call.args.max, spark_factory=lambda: call.session("export-jobs"))
    _emit([r.to_dict() for r in records])
    return 0 if all(r.status is JobStatus.SUCCEEDED for r in records) else EXIT_FAILED


def _peek(call: Call) -> int:
    return peek(call.config, call.args.id, call.args.limit, call.org, call.sandbox)


def _segment(call: Call) -> int:
    args, store = call.args, SegmentStore(call.config.segment_table_path)
    if args.action == "create":
        _emit(create_segment(store, call.config, _read(args.file), call.org, call.sandbox).to_dict())
    elif args.action == "list":
        _emit(list_segments(store, call.org, call.sandbox, args.limit, args.offset))
    elif args.action == "get":
        _emit(store.get(args.id, call.org, call.sandbox).to_dict())
    elif args.action == "update":
        _emit(update_segment(store, call.config, args.id, _read(args.file), call.org, call.sandbox).to_dict())
    else:
        schedules, jobs = ScheduleStore(call.config.schedule_table_path), JobStore(call.config.job_table_path)
        delete_segment(store, args.id, call.org, call.sandbox,
                       evaluations_of(args.id, schedules, jobs, call.org, call.sandbox))
        _emit({"status": True, "message": f"segment definition {args.id} deleted"})
    return 0


def _schedule(call: Call) -> int:
    args, schedules = call.args, ScheduleStore(call.config.schedule_table_path)
    if args.action == "create":
        _emit(create_schedule(schedules, call.config, _read(args.file), call.org, call.sandbox).to_dict())
    elif args.action == "list":
        _emit([s.to_dict() for s in schedules.list(call.org, call.sandbox)])
    else:
        schedules.delete(args.id, call.org, call.sandbox)
    return 0


COMMANDS: dict[str, Callable[[Call], int]] = {
    "serve": _serve, "create": _create, "get": _get, "list": _list, "cancel": _cancel, "run": _run,
    "run-pending": _run_pending, "peek": _peek, "segment": _segment, "schedule": _schedule,
}


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.conf)
    except ConfigError as err:
        log.error("%s", err)
        return EXIT_REJECTED
    call = Call(args, config, args.org or config.default_org, args.sandbox or config.default_sandbox)
    try:
        return COMMANDS[args.command](call)
    except ExportJobsError as err:
        log.error("%s: %s", err.code, err)
        _emit(err.document())
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
