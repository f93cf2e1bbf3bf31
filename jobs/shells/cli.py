"""`export-jobs` (and `python -m jobs`): JSON results on stdout, logs on stderr (docs/reference/cli.md).

Exit codes (jobs.spec.errors, docs/reference/cli.md#exit-codes): 0 success, 1 a job that ended
FAILED or CANCELLED, 2 usage, then one per kind of refusal (each `ExportJobsError` has its own and
prints its problem document), and 70 for a bug of ours.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from jobs.control import (
    DELIVERY_STATUSES,
    SEGMENT_JOB,
    DeliveryStore,
    JobStore,
    PreviewStore,
    PrivacyStore,
    ScheduleStore,
    SegmentStore,
    WebhookDeliverer,
    access_document,
    cancel_job,
    create_job,
    create_preview,
    create_privacy_jobs,
    create_schedule,
    create_segment,
    create_segment_job,
    delete_segment,
    deliver_before_exit,
    estimate_document,
    evaluations_of,
    explain_job,
    job_event_recorder,
    list_jobs,
    list_privacy_jobs,
    list_schedules,
    list_segment_jobs,
    list_segments,
    patch_schedule,
    preview_page,
    replay_job,
    segment_job_document,
    send_samples,
    settled_preview,
    update_segment,
)
from jobs.shells.logs import setup_logging
from jobs.shells.peek import peek
from jobs.shells.table_output import TABLES
from jobs.spec import (
    CONFIG_VARIABLE,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_TIMEOUT,
    EXIT_UNAVAILABLE,
    Config,
    ConfigError,
    ExportJobsError,
    JobStatus,
    LogFormat,
    PreviewState,
    PrivacyStatus,
    RequestRejected,
    SegmentJobStatus,
    UsageError,
    find_config,
    load_config,
    shown_settings,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("export-jobs")
EXIT_BROKEN_PIPE = 141  # as a shell reports a command its reader stopped reading (128 + SIGPIPE)
# The spark extra's modules: a command that needs them says how to install them.
ENGINE_MODULES = ("pyspark", "delta", "py4j")


def _global_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The options every command takes. Given again to each subcommand (with no defaults there, so
    that one given before the subcommand is kept), they may come before or after it."""
    keep = argparse.SUPPRESS
    parser.add_argument("--conf", default=None if defaults else keep,
                        help=f"config file (default: ${CONFIG_VARIABLE}, then ./conf/export.toml, then "
                             "~/.config/export-jobs/export.toml)")
    parser.add_argument("--org", default=None if defaults else keep,
                        help="IMS org (default: the config's defaultOrg)")
    parser.add_argument("--sandbox", default=None if defaults else keep,
                        help="sandbox (default: the config's defaultSandbox)")
    parser.add_argument("--verbose", action="store_true", default=False if defaults else keep,
                        help="Spark's own start-up messages and warnings on stderr (default: its errors only)")
    parser.add_argument("--log-format", choices=get_args(LogFormat), default=None if defaults else keep,
                        help="logs on stderr as text lines or one JSON object per line (default: the config's "
                             "logFormat, text)")


class _Commands:
    """add_parser for (sub)commands that also take the global options."""

    def __init__(self, subparsers: Any):
        self.subparsers = subparsers

    def add(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = self.subparsers.add_parser(name, **kwargs)
        _global_options(command, defaults=False)
        return command

    def group(self, name: str, text: str) -> _Commands:
        return _Commands(self.add(name, help=text).add_subparsers(dest="action", required=True))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export-jobs", description="Segment export jobs on Spark and Delta.")
    parser.add_argument("--version", action="version", version=versions())
    _global_options(parser, defaults=True)
    commands = _Commands(parser.add_subparsers(dest="command", required=True))
    create = commands.add("create", help="create a job from a JSON definition")
    create.add_argument("file", help="definition file, or - for standard input")
    create.add_argument("--dry-run", action="store_true",
                        help="make every check and print the record it would store; store nothing")
    commands.add("validate", help="every check create makes, nothing stored (create --dry-run)").add_argument(
        "file", help="definition file, or - for standard input")
    commands.add("explain", help="the datasets and versions a job would read, and what it would do; nothing written"
                 ).add_argument("file", help="definition file, or - for standard input")
    waiting = commands.add("wait", help="wait until a job has finished; exit 0 if it SUCCEEDED, 1 if not")
    waiting.add_argument("id", type=int)
    waiting.add_argument("--timeout", type=float, help="give up after this many seconds (exit 75)")
    waiting.add_argument("--interval", type=float, default=2.0, help="seconds between looks (default: %(default)s)")
    _output(commands.add("get", help="show a job")).add_argument("id", type=int)
    replay = commands.add("replay", help="a new job that runs a job again, at the table versions it read, into "
                                          "another destination")
    replay.add_argument("id", type=int)
    replay.add_argument("--destination", required=True, help="the destination dataset id the replay writes to")
    for name, text in (("run", "run a NEW job now, on the configured Spark master"),
                       ("cancel", "cancel a NEW or running job")):
        commands.add(name, help=text).add_argument("id", type=int)
    schedule = commands.group("schedule", "recurring exports")
    schedule.add("create", help='create from {"name", "type", "properties", "schedule", "state"} JSON').add_argument(
        "file", help="schedule file, or - for standard input")
    scheduled = _output(schedule.add("list", help="list schedules, newest first"))
    scheduled.add_argument("--limit", type=int, default=50)
    scheduled.add_argument("--offset", help="cursor {creationTime}_{id} from a previous page")
    _output(schedule.add("get", help="show a schedule")).add_argument("id")
    schedule.add("delete", help="delete a schedule").add_argument("id")
    schedule.add("pause", help="stop a schedule's new runs (state inactive)").add_argument("id")
    schedule.add("resume", help="run a schedule again from its next slot (state active)").add_argument("id")
    segment = commands.group("segment", "segment definitions (PQL)")
    segment.add("create", help="create from a definition's JSON").add_argument(
        "file", help="definition file, or - for standard input")
    listed = _output(segment.add("list", help="list definitions, newest first"))
    listed.add_argument("--limit", type=int, default=50)
    listed.add_argument("--offset", help="cursor {creationTime}_{id} from a previous page")
    _output(segment.add("get", help="show a definition")).add_argument("id")
    update = segment.add("update", help="change name, description, expression or mergePolicyId")
    update.add_argument("id")
    update.add_argument("file", help="a partial definition's JSON, or - for standard input")
    segment.add("delete", help="delete a definition no other one uses").add_argument("id")
    job = segment.add("job-create", help="create a segment job: evaluate segments, write back their memberships")
    job.add_argument("ids", nargs="*", help="segment definition ids")
    job.add_argument("--all", action="store_true", help="every definition of the sandbox")
    jobs_listed = segment.add("job-list", help="list segment jobs, newest first")
    jobs_listed.add_argument("--limit", type=int, default=50)
    jobs_listed.add_argument("--offset", help="cursor {creationTime}_{id} from a previous page")
    jobs_listed.add_argument("--status", choices=list(get_args(SegmentJobStatus)))
    segment.add("job-get", help="show a segment job").add_argument("id", type=int)
    for name, text in (("preview", "the profiles of a sample of the lake that a PQL expression matches"),
                       ("estimate", "how many profiles a PQL expression matches, estimated from a sample")):
        sampled = segment.add(name, help=text)
        target = sampled.add_mutually_exclusive_group(required=True)
        target.add_argument("--pql", help="the expression (pql/text), evaluated here")
        target.add_argument("--id", help="a preview created through the API; computed here if no server has")
        sampled.add_argument("--merge-strategy", help="a merge policy id (default: the config's default)")
        sampled.add_argument("--graph-type", choices=["none", "pdg"], help="what a profile is")
        if name == "preview":
            sampled.add_argument("--limit", type=int, default=50, help="profiles to print (default: %(default)s)")
            sampled.add_argument("--offset", type=int, default=0, help="profiles to skip")
    privacy = commands.group("privacy", "access and delete requests, in the shape of AEP's Privacy Service")
    privacy.add("create", help="create from a request's JSON: one job per user").add_argument(
        "file", help="request file, or - for standard input")
    requested = privacy.add("list", help="list privacy jobs, newest first")
    requested.add_argument("--limit", type=int, default=50)
    requested.add_argument("--offset", help="cursor {creationTime}_{jobId} from a previous page")
    requested.add_argument("--status", choices=[s.value for s in PrivacyStatus])
    privacy.add("get", help="show a privacy job, with its receipts").add_argument("id")
    privacy.add("document", help="print a privacy job's access document").add_argument("id")
    pending = commands.add("run-pending", help="take back lost jobs, run privacy jobs, then NEW jobs oldest first")
    pending.add_argument("--max", type=int, help="run at most this many jobs")
    listing = _output(commands.add("list", help="list jobs, newest first"))
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", help="cursor {creationTime}_{id} from a previous page")
    listing.add_argument("--status", choices=[s.value for s in JobStatus])
    peeking = commands.add("peek", help="print a few of a job's exported rows and check their count")
    peeking.add_argument("--limit", type=int, default=3, help="rows to print (default: %(default)s)")
    peeking.add_argument("id", type=int)
    serve = commands.add("serve", help="serve the HTTP API on /export/jobs")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    serve.add_argument("--no-runner", action="store_true",
                       help="only serve the API; leave NEW jobs to other runners (run-pending)")
    webhooks = commands.group("webhooks", "endpoints that receive job, schedule and privacy events")
    tested = webhooks.add("test", help="send a sample event now to the tenant's endpoints (or --name's); exit 1 "
                                       "unless each one answered 2xx")
    tested.add_argument("--name", help="the webhook's name in the config (default: every one of the tenant)")
    tested.add_argument("--attempts", type=int, default=1,
                        help="attempts per endpoint, with the configured backoff between them (default: %(default)s)")
    deliveries = webhooks.add("deliveries", help="the tenant's delivery log, newest first")
    deliveries.add_argument("--status", choices=DELIVERY_STATUSES)
    deliveries.add_argument("--limit", type=int, default=50)
    commands.group("config", "the deployment's settings").add(
        "show", help="the effective settings and where each came from (secrets masked)")
    jars = commands.add("setup-jars", help="fetch the Delta jars that match the installed pyspark and delta-spark")
    jars.add_argument("--dir", help="folder to keep them in (default: $EXPORT_JOBS_JARS, else the user's cache)")
    jars.add_argument("--repository",
                      help="Maven repository (default: $EXPORT_JOBS_MAVEN_REPOSITORY, else Maven Central)")
    jars.add_argument("--class-archive", action="store_true",
                      help="also build the driver JVM's class archive beside them, for faster starts (a minute, once)")
    return parser


def _output(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
    command.add_argument("--output", choices=("json", "table"),
                         help="json (the default when piped) or table (the default on a terminal)")
    return command


def versions() -> str:
    """This package's version and the engine's it runs on (pyspark is an extra: it may be absent)."""
    found = []
    for name in ("pyspark", "delta-spark"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} not installed")
    return f"export-jobs {version('segment-export-jobs')} ({', '.join(found)})"


def _emit(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _show(call: Call, command: str, value: Any) -> None:
    """A read command's answer: JSON for scripts (piped), a table for people (a terminal), or as --output says."""
    output = call.args.output or ("table" if sys.stdout.isatty() else "json")
    if output == "table":
        print(TABLES[command](value))
    else:
        _emit(value)


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
        return JobStore(self.config.job_table_path, job_event_recorder(self.config))

    def session(self, app_name: str) -> SparkSession:
        """The configured session, with Spark's progress bar when a person watches stderr."""
        from jobs.engine import session_for

        progress = {"spark.ui.showConsoleProgress": "true"} if sys.stderr.isatty() else {}
        return session_for(self.config, app_name, progress, self.args.verbose)


# The commands that run jobs load Spark (through the runner) when they run; the others never do.


def _serve(call: Call) -> int:
    from jobs.control import PreviewWorker, RunnerLoop, deployment_session
    from jobs.shells.http import serve  # FastAPI and uvicorn only load for the server

    log_format = call.args.log_format or call.config.log_format
    deliverer = WebhookDeliverer(call.config)  # a cancel through the API finishes jobs too
    if call.args.no_runner:
        serve(call.config, call.args.host, call.args.port, on_startup=deliverer.start, on_shutdown=deliverer.stop,
              log_format=log_format)
        return 0
    # One session for jobs and previews: a preview runs beside a running export, in the warm session.
    spark = deployment_session(call.config, call.args.verbose)
    loop = RunnerLoop(call.jobs, call.config, spark_factory=spark)
    previews = PreviewWorker(PreviewStore(call.config.preview_table_path), call.config, spark)

    def start() -> None:
        loop.start()
        previews.start()
        deliverer.start()

    def stop() -> None:
        # uvicorn turns SIGTERM into a shutdown: the loop claims no more jobs and its running one has the grace.
        previews.stop()
        loop.stop(call.config.shutdown_grace_seconds)
        deliverer.stop()

    serve(call.config, call.args.host, call.args.port, on_startup=start, on_shutdown=stop, runner_ready=loop.ready,
          log_format=log_format)
    return 0


def _create(call: Call) -> int:
    dry_run = call.args.command == "validate" or call.args.dry_run
    record = create_job(call.jobs, call.config, _read(call.args.file), call.org, call.sandbox, dry_run=dry_run)
    for warning in record.warnings or ():
        log.warning("%s: %s", warning.path, warning.msg)
    _emit(record.to_dict())
    return 0


def _replay(call: Call) -> int:
    _emit(replay_job(call.jobs, call.config, call.args.id, call.args.destination, call.org, call.sandbox).to_dict())
    return 0


def _explain(call: Call) -> int:
    _emit(explain_job(call.jobs, call.config, _read(call.args.file), call.org, call.sandbox))
    return 0


def _wait(call: Call) -> int:
    """Polls the job table, which every runner writes, so it waits for a job run anywhere."""
    deadline = None if call.args.timeout is None else time.monotonic() + call.args.timeout
    while True:
        record = call.jobs.get(call.args.id, call.org, call.sandbox)
        if record.status.finished:
            _emit(record.to_dict())
            return 0 if record.status is JobStatus.SUCCEEDED else EXIT_FAILED
        if deadline is not None and time.monotonic() >= deadline:
            log.error("job %d is still %s after %g s", record.id, record.status.value, call.args.timeout)
            _emit(record.to_dict())
            return EXIT_TIMEOUT
        time.sleep(max(0.05, call.args.interval))


def _get(call: Call) -> int:
    _show(call, "get", call.jobs.get(call.args.id, call.org, call.sandbox).to_dict())
    return 0


def _list(call: Call) -> int:
    status = JobStatus(call.args.status) if call.args.status else None
    _show(call, "list", list_jobs(call.jobs, call.org, call.sandbox, call.args.limit, call.args.offset, status))
    return 0


def _cancel(call: Call) -> int:
    _emit(cancel_job(call.jobs, call.args.id, call.org, call.sandbox).to_dict())
    return 0


def _run(call: Call) -> int:
    from jobs.control import run_job

    job_id = call.args.id
    call.jobs.get(job_id, call.org, call.sandbox)  # another tenant's job is not found
    record = run_job(call.jobs, call.config, job_id, spark_factory=lambda: call.session(f"export-job-{job_id}"))
    deliver_before_exit(call.config)
    _emit(record.to_dict())
    return 0 if record.status is JobStatus.SUCCEEDED else EXIT_FAILED


def _run_pending(call: Call) -> int:
    from jobs.control import RELEASE_WAIT_S, run_pending

    stop, release = threading.Event(), threading.Event()
    grace = call.config.shutdown_grace_seconds
    signal.signal(signal.SIGTERM, lambda _signal, _frame: _stop_claiming(stop, release, grace, RELEASE_WAIT_S))
    deliverer = WebhookDeliverer(call.config)
    deliverer.start()
    try:
        records = run_pending(call.jobs, call.config, call.args.max,
                              spark_factory=lambda: call.session("export-jobs"), stop=stop, release=release)
    finally:
        deliverer.stop()
    deliver_before_exit(call.config)
    _emit([r.to_dict() for r in records])
    # A job given back as NEW (released, or committed and to be finished by the next run) did not fail.
    return EXIT_FAILED if any(r.status in (JobStatus.FAILED, JobStatus.CANCELLED) for r in records) else 0


def _stop_claiming(stop: threading.Event, release: threading.Event, grace: float,
                   release_wait: float) -> list[threading.Timer]:
    """SIGTERM (a container stopping): claim no more jobs, give the running one `grace` seconds, then
    give it back as NEW; exit anyway if its Spark work has not stopped `release_wait` seconds later."""
    log.warning("SIGTERM: claiming no more jobs; a running job has %g s (shutdownGraceSeconds) to finish, "
                "then it is given back as NEW", grace)
    stop.set()
    timers = [threading.Timer(grace, release.set), threading.Timer(grace + release_wait, _give_up)]
    for timer in timers:
        timer.daemon = True
        timer.start()
    return timers


def _give_up() -> None:
    log.error("the released job's Spark work did not stop: exiting; the job is NEW again for another runner")
    logging.shutdown()
    os._exit(EXIT_TIMEOUT)


def _peek(call: Call) -> int:
    return peek(call.config, call.args.id, call.args.limit, call.org, call.sandbox)


def _segment(call: Call) -> int:
    args, store = call.args, SegmentStore(call.config.segment_table_path)
    if args.action == "create":
        _emit(create_segment(store, call.config, _read(args.file), call.org, call.sandbox).to_dict())
    elif args.action == "list":
        _show(call, "segment list", list_segments(store, call.org, call.sandbox, args.limit, args.offset))
    elif args.action == "get":
        _show(call, "segment get", store.get(args.id, call.org, call.sandbox).to_dict())
    elif args.action == "update":
        _emit(update_segment(store, call.config, args.id, _read(args.file), call.org, call.sandbox).to_dict())
    elif args.action in ("preview", "estimate"):
        return _preview(call)
    elif args.action == "job-create":
        if bool(args.ids) == args.all:
            raise UsageError("name the segment definitions to evaluate, or --all, not both")
        body = ["*"] if args.all else [{"segmentId": i} for i in args.ids]
        _emit(segment_job_document(create_segment_job(call.jobs, call.config, body, call.org, call.sandbox)))
    elif args.action == "job-list":
        _emit(list_segment_jobs(call.jobs, call.org, call.sandbox, args.limit, args.offset, args.status))
    elif args.action == "job-get":
        _emit(segment_job_document(call.jobs.get(args.id, call.org, call.sandbox, SEGMENT_JOB)))
    else:
        schedules, jobs = ScheduleStore(call.config.schedule_table_path), JobStore(call.config.job_table_path)
        delete_segment(store, args.id, call.org, call.sandbox,
                       evaluations_of(args.id, schedules, jobs, call.org, call.sandbox))
        _emit({"status": True, "message": f"segment definition {args.id} deleted"})
    return 0


def _preview(call: Call) -> int:
    """`segment preview|estimate`: a preview computed in this process's own session (or a server's, by --id)."""
    args, store = call.args, PreviewStore(call.config.preview_table_path)
    preview_id = args.id
    if args.pql is not None:
        body = {"predicateExpression": args.pql, "mergeStrategy": args.merge_strategy, "graphType": args.graph_type}
        preview_id = create_preview(store, call.config, {k: v for k, v in body.items() if v is not None},
                                    call.org, call.sandbox).preview_id
    preview = settled_preview(store, call.config, lambda: call.session("export-jobs-preview"), preview_id,
                              call.org, call.sandbox)
    _emit(preview_page(preview, args.limit, args.offset) if args.action == "preview" else estimate_document(preview))
    return 0 if preview.state is PreviewState.RESULT_READY else EXIT_FAILED


def _schedule(call: Call) -> int:
    args, schedules = call.args, ScheduleStore(call.config.schedule_table_path)
    if args.action == "create":
        _emit(create_schedule(schedules, call.config, _read(args.file), call.org, call.sandbox).to_dict())
    elif args.action == "list":
        _show(call, "schedule list", list_schedules(schedules, call.org, call.sandbox, args.limit, args.offset))
    elif args.action == "get":
        _show(call, "schedule get", schedules.get(args.id, call.org, call.sandbox).to_dict())
    elif args.action in ("pause", "resume"):
        state = "inactive" if args.action == "pause" else "active"
        _emit(patch_schedule(schedules, args.id, [{"op": "replace", "path": "/state", "value": state}],
                             call.org, call.sandbox).to_dict())
    else:
        schedules.delete(args.id, call.org, call.sandbox)
    return 0


def _privacy(call: Call) -> int:
    args, store = call.args, PrivacyStore(call.config.privacy_table_path)
    if args.action == "create":
        _emit(create_privacy_jobs(store, _read(args.file), call.org, call.sandbox))
    elif args.action == "list":
        status = PrivacyStatus(args.status) if args.status else None
        _emit(list_privacy_jobs(store, call.org, call.sandbox, args.limit, args.offset, status))
    elif args.action == "document":
        _emit(access_document(store, args.id, call.org, call.sandbox))
    else:
        _emit(store.get(args.id, call.org, call.sandbox).to_dict())
    return 0


def _webhooks(call: Call) -> int:
    args = call.args
    if args.action == "test":
        if args.attempts < 1:
            raise UsageError("--attempts must be 1 or more")
        results = send_samples(call.config, call.org, call.sandbox, args.name, args.attempts)
        _emit(results)
        return 0 if all(r["delivered"] for r in results) else EXIT_FAILED
    if args.limit < 1:
        raise UsageError("--limit must be 1 or more")
    _emit(DeliveryStore(call.config.webhook_table_path).list(call.org, call.sandbox, args.status, args.limit))
    return 0


def _config(call: Call) -> int:
    _emit(shown_settings(call.config, *find_config(call.args.conf)))
    return 0


COMMANDS: dict[str, Callable[[Call], int]] = {
    "serve": _serve, "create": _create, "validate": _create, "explain": _explain, "wait": _wait, "get": _get,
    "replay": _replay, "list": _list, "cancel": _cancel, "run": _run, "run-pending": _run_pending, "peek": _peek,
    "segment": _segment, "schedule": _schedule, "privacy": _privacy, "webhooks": _webhooks, "config": _config,
}


def _setup_jars(args: argparse.Namespace) -> int:
    """Needs no config: it is what a fresh install runs first."""
    from jobs.engine import fetch_jars

    folder = Path(args.dir) if args.dir else None
    try:
        paths = fetch_jars(folder, args.repository)
    except RuntimeError as err:
        log.error("%s", err)
        return EXIT_UNAVAILABLE
    fetched: dict[str, object] = {"jars": [str(p) for p in paths]}
    if args.class_archive:
        from jobs.engine import build_archive

        if folder is not None:  # the archive's session takes its Delta jars from there too
            os.environ["EXPORT_JOBS_JARS"] = str(folder)
        try:
            built = build_archive(folder)
        except RuntimeError as err:
            log.error("no class archive (JVMs start without one): %s", err)
            return 1
        fetched["classArchive"] = str(built) if built else None
    _emit(fetched)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_format or "text")
    if args.command == "setup-jars":
        return _setup_jars(args)
    try:
        file, chosen_by = find_config(args.conf)
        config = load_config(file)
        setup_logging(args.log_format or config.log_format)
        log.debug("config %s (%s)", file, chosen_by)
        call = Call(args, config, *config.acting_tenant(args.org, args.sandbox))
        return COMMANDS[args.command](call)
    except ExportJobsError as err:
        log.error("%s: %s", err.code, err)
        if not isinstance(err, ConfigError | UsageError):
            _emit(err.document())
        return err.exit_code
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in ENGINE_MODULES:
            return _internal_error()
        log.error("%s: this command runs Spark; install the engine with pip install 'segment-export-jobs[spark]', "
                  "or run it where the platform provides pyspark and delta-spark", err)
        return EXIT_UNAVAILABLE
    except BrokenPipeError:  # `export-jobs list | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception:
        return _internal_error()


def _internal_error() -> int:
    log.exception("internal error (a bug: please report it with this log)")
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
