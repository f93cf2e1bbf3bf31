"""`export-jobs` (and `python -m jobs`): JSON results on stdout, logs on stderr.

Exit codes: 0 success, 1 a job that ended FAILED or CANCELLED, 2 bad usage or a
rejected request.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.config import Config, ConfigError, load_config
from jobs.definition_store import DefinitionConflict, DefinitionNotFound
from jobs.logs import setup_logging
from jobs.model import JobStatus, RequestRejected, problem_document
from jobs.plan import LakeError
from jobs.service import cancel_job, create_job, list_jobs, page_document
from jobs.store import JobNotFound, JobStore, StatusConflict

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
    serve = commands.add_parser("serve", help="serve the HTTP API on /export/jobs")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    serve.add_argument("--no-runner", action="store_true",
                       help="only serve the API; leave NEW jobs to other runners (run-pending)")
    return parser


def _emit(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _read(file: str) -> str:
    return sys.stdin.read() if file == "-" else Path(file).read_text()


def _segment(args: argparse.Namespace, config: Config, org: str, sandbox: str) -> int:
    from jobs.definition_store import (
        DefinitionStore,
        create_definition,
        delete_definition,
        list_definitions,
        update_definition,
    )

    store = DefinitionStore(config.segment_table_path)
    if args.action == "create":
        _emit(create_definition(store, config, _read(args.file), org, sandbox).to_dict())
    elif args.action == "list":
        _emit(list_definitions(store, org, sandbox, args.limit, args.offset))
    elif args.action == "get":
        _emit(store.get(args.id, org, sandbox).to_dict())
    elif args.action == "update":
        _emit(update_definition(store, config, args.id, _read(args.file), org, sandbox).to_dict())
    else:
        delete_definition(store, args.id, org, sandbox)
        _emit({"status": True, "message": f"segment definition {args.id} deleted"})
    return 0


def _schedule(args: argparse.Namespace, config: Config, org: str, sandbox: str) -> int:
    from jobs.schedules import ScheduleStore, create_schedule

    schedules = ScheduleStore(config.schedule_table_path)
    if args.action == "create":
        _emit(create_schedule(schedules, config, _read(args.file), org, sandbox).to_dict())
    elif args.action == "list":
        _emit([s.to_dict() for s in schedules.list(org, sandbox)])
    elif not schedules.delete(args.id, org, sandbox):
        raise JobNotFound(f"no schedule {args.id}")
    return 0


def _session(config: Config, app_name: str, verbose: bool) -> SparkSession:
    """The configured session, with Spark's progress bar when a person watches stderr."""
    from jobs.engine.session import session_for

    progress = {"spark.ui.showConsoleProgress": "true"} if sys.stderr.isatty() else {}
    return session_for(config, app_name, progress, verbose)


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.conf)
    except ConfigError as err:
        log.error("%s", err)
        return 2
    org, sandbox = args.org or config.default_org, args.sandbox or config.default_sandbox
    store = JobStore(config.job_table_path)
    try:
        if args.command == "serve":
            from jobs.api import serve  # FastAPI and uvicorn only load for the server
            from jobs.runner import RunnerLoop, deployment_session

            loop = None if args.no_runner else RunnerLoop(
                store, config, spark_factory=deployment_session(config, args.verbose))
            serve(config, args.host, args.port,
                  on_startup=loop.start if loop else None, on_shutdown=loop.stop if loop else None)
            return 0
        if args.command == "create":
            _emit(create_job(store, config, _read(args.file), org, sandbox).to_dict())
            return 0
        if args.command == "get":
            _emit(store.get(args.id, org, sandbox).to_dict())
            return 0
        if args.command == "list":
            status = JobStatus(args.status) if args.status else None
            records, next_offset = list_jobs(store, org, sandbox, args.limit, args.offset, status)
            _emit(page_document(records, args.limit, args.offset, next_offset, status))
            return 0
        if args.command == "cancel":
            _emit(cancel_job(store, args.id, org, sandbox).to_dict())
            return 0
        if args.command == "run":
            from jobs.runner import run_job

            store.get(args.id, org, sandbox)  # another tenant's job is not found
            record = run_job(store, config, args.id,
                             spark_factory=lambda: _session(config, f"export-job-{args.id}", args.verbose))
            _emit(record.to_dict())
            return 0 if record.status is JobStatus.SUCCEEDED else 1
        if args.command == "schedule":
            return _schedule(args, config, org, sandbox)
        if args.command == "segment":
            return _segment(args, config, org, sandbox)
        if args.command == "run-pending":
            from jobs.runner import run_pending

            records = run_pending(store, config, args.max,
                                  spark_factory=lambda: _session(config, "export-jobs", args.verbose))
            _emit([r.to_dict() for r in records])
            return 0 if all(r.status is JobStatus.SUCCEEDED for r in records) else 1
    except RequestRejected as err:
        log.error("request rejected: %s", err)
        _emit(problem_document(400, str(err), err.problems))
    except (JobNotFound, DefinitionNotFound) as err:
        log.error("%s", err)
        _emit(problem_document(404, str(err)))
    except (StatusConflict, DefinitionConflict) as err:
        log.error("%s", err)
        _emit(problem_document(409, str(err)))
    except (LakeError, ValueError, OSError) as err:
        log.error("%s", err)
        _emit(problem_document(400, str(err)))
    return 2


if __name__ == "__main__":
    sys.exit(main())
