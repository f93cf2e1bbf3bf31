"""The one place that builds a SparkSession with Delta Lake.

The Delta jars are not in the delta-spark wheel: how a session gets them is
jobs.engine.jars's (a folder filled once, by default, so that nothing is
downloaded when a job or a test runs).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.engine.class_archive import archive_options, build_archive
from jobs.engine.jars import JarMode, delta_coordinates, delta_jars, fetch_jars, jar_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.spec import Config

# An embedded session stays on loopback; under spark-submit the cluster decides.
LOCAL_CONF = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
# What the export needs to be correct in every session, embedded or under spark-submit
# (docs/operations.md#spark-settings-embedded-and-under-spark-submit); the jars come with them
# (spark.jars here, --jars from scripts/submit).
REQUIRED_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    # Keep the destination readable by other Delta readers, such as delta-rs.
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
}
# The Python driver's own settings, in every session. PySpark 4 records the Python call site of
# every Column operation, for error messages about user code: a walk of the stack and four calls
# to the JVM each. An evaluating export's plan takes thousands of them, seconds of driver time
# (docs/design.md#no-python-call-site-per-column). PySpark reads it once per process.
DRIVER_CONF: dict[str, str] = {"spark.python.sql.dataFrameDebugging.enabled": "false"}
# Performance settings measured on local[2], for embedded sessions only.
EMBEDDED_TUNING: dict[str, str] = {
    # Delta rebuilds table state with this many tasks; its default of 50 is
    # tuned for clusters and costs seconds per read on a small machine.
    "spark.databricks.delta.snapshotPartitions": "4",
    # Whole-stage codegen fuses the scan's wide projection (identities, leaves, one
    # column per segment) into one method too large for the JIT, which then
    # interprets it; per-operator codegen keeps methods small. Measured at 1M
    # profiles (docs/performance.md#whole-stage-code-generation-is-off): exports and the
    # plain read+write floor are both faster without it.
    "spark.sql.codegen.wholeStage": "false",
    # The merge's aggregation (collect_list and max_by over strings and structs) cannot
    # use HashAggregate; ObjectHashAggregate falls back to sorting after 128 keys on
    # both sides of the shuffle and shuffles its buffers. A sort aggregation over input
    # that merge_profiles sorts once, after the shuffle, does half the work
    # (docs/design.md#sort-aggregation-after-one-shuffle-16-mb-partitions).
    "spark.sql.execution.useObjectHashAggregateExec": "false",
    # AQE coalesces shuffle partitions to 64 MB, which gave the merge's CPU-heavy
    # reduce stage 3 or 4 tasks on 2 cores, one of them idle at the end; 16 MB keeps
    # several tasks per core. Written files stay tens of MB.
    "spark.sql.adaptive.advisoryPartitionSizeInBytes": "16m",
}
# Settings every embedded session gets; the config's [spark] table and callers may override them.
# An embedded session is a library's: no UI on a port of this machine, no progress bar.
EMBEDDED_CONF: dict[str, str] = {
    **REQUIRED_CONF,
    **DRIVER_CONF,
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    **EMBEDDED_TUNING,
}
# The tuning kept under spark-submit: what paid on a standalone cluster of two one-core
# executors at 1M profiles (`scripts/bench settings`; docs/performance.md#spark-settings-on-a-cluster).
# With 4 snapshot tasks rather than Delta's 50, the 1- and 20-segment exports were both
# faster; the other settings of EMBEDDED_TUNING did not pay there (even, mixed or slower),
# so they are left to Spark's defaults.
SUBMITTED_TUNING: dict[str, str] = {
    "spark.databricks.delta.snapshotPartitions": EMBEDDED_TUNING["spark.databricks.delta.snapshotPartitions"],
}
# Embedded sessions start quietly: Spark logs errors only, and the JVM's notice about its
# incubator modules is dropped (docs/operations.md#quiet-start-up); `verbose` keeps Spark's own logging.
# The log4j file ships in the package (package data), so an installed package or a PEX finds it too.
QUIET_LOG4J = "log4j2-quiet.properties"
INCUBATOR_NOTICE = b"WARNING: Using incubator modules"


def build_session(
    master: str = "local[*]",
    app_name: str = "export-jobs",
    conf: Mapping[str, str] | None = None,
    verbose: bool = False,
    jars: JarMode = "folder",
) -> SparkSession:
    """Get or create an embedded SparkSession with Delta's extensions and catalog, on loopback;
    quiet unless `verbose` (when this call starts the JVM); `jars`: how it gets Delta's jars."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    settings = {**EMBEDDED_CONF, **LOCAL_CONF}
    settings.update(jar_settings(jars))
    settings.update(conf or {})
    _start_jvm(master, app_name, settings, quiet=not verbose)
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def quiet_log4j() -> Path:
    """The package's quiet log4j configuration as a file the JVM can read."""
    resource = resources.files("jobs.engine").joinpath(QUIET_LOG4J)
    if isinstance(resource, Path):
        return resource
    # Inside a zip (spark-submit's --py-files archive): the JVM needs a file of its own.
    copy = Path(tempfile.gettempdir()) / f"export-jobs-{QUIET_LOG4J}"
    copy.write_bytes(resource.read_bytes())
    return copy


def driver_java_options(settings: Mapping[str, str], quiet: bool = True) -> str:
    """The driver's Java options, with the class archive built for this JVM, if any (engine/class_archive.py),
    and if `quiet`, the quiet log4j configuration; each unless the options choose their own."""
    options = settings.get("spark.driver.extraJavaOptions", "")
    added = [archive_options(options)]
    if quiet and "log4j2.configurationFile" not in options:
        added.append(f"-Dlog4j2.configurationFile={quiet_log4j().as_uri()}")
    return " ".join(o for o in [options, *added] if o)


def _start_jvm(master: str, app_name: str, settings: Mapping[str, str], quiet: bool) -> None:
    """Launches the driver JVM as pyspark would, with `driver_java_options`, and if `quiet` its stderr
    through `_drop_notice`; does nothing when this process already has a JVM."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:
        return
    conf = SparkConf().setMaster(master).setAppName(app_name)
    for key, value in settings.items():
        conf.set(key, value)
    conf.set("spark.driver.extraJavaOptions", driver_java_options(settings, quiet))
    if not quiet:
        SparkContext._ensure_initialized(gateway=launch_gateway(conf))
        return
    gateway = launch_gateway(conf, popen_kwargs={"stderr": subprocess.PIPE})
    threading.Thread(target=_drop_notice, args=(gateway.proc.stderr,), name="jvm-stderr", daemon=True).start()
    SparkContext._ensure_initialized(gateway=gateway)


def _drop_notice(stream: io.BufferedReader) -> None:
    """Copies the JVM's stderr to ours, but for its first line if that is the incubator notice
    (the JVM prints it for Spark's --add-modules; no option turns it off)."""
    first = stream.readline()
    if not first.startswith(INCUBATOR_NOTICE):
        os.write(2, first)
    while chunk := stream.read1(65536):  # what has come, without waiting for a newline (the progress bar)
        os.write(2, chunk)


def under_spark_submit() -> bool:
    """True in a driver that spark-submit started (it hands the driver its JVM's gateway)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def session_for(config: Config, app_name: str, overrides: Mapping[str, str] | None = None,
                verbose: bool = False) -> SparkSession:
    """The session a deployment's jobs run in.

    Embedded (the CLI, the API's runner, the demo): the config's master and [spark]
    settings over the embedded ones, then `overrides`; quiet unless `verbose`. Under
    spark-submit its settings (and the cluster's defaults) win, and only the required
    settings, the driver's, the tuning measured on a cluster and the config's [spark]
    table fill in what it left unset; Spark's logging is the cluster's.
    """
    master, conf = config.spark_conf()
    settings = {**conf, **(overrides or {})}
    if not under_spark_submit():
        return build_session(master, app_name, settings, verbose, config.delta_jars)
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    SparkContext._ensure_initialized()  # attach to spark-submit's JVM
    submitted = SparkConf()  # what spark-submit passed, from the JVM's system properties
    builder = SparkSession.builder.appName(app_name)
    for key, value in {**REQUIRED_CONF, **DRIVER_CONF, **SUBMITTED_TUNING, **settings}.items():
        if not submitted.contains(key):
            builder = builder.config(key, value)
    return builder.getOrCreate()


def main(argv: list[str] | None = None) -> int:
    """`python -m jobs.engine coordinates|jars|check|fetch|archive`: used by scripts/setup and scripts/submit."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["archive"]:
        try:
            built = build_archive()
        except RuntimeError as err:
            print(f"setup: no class archive, so JVMs start without one: {err}", file=sys.stderr)
            return 1
        print(built or "no java on PATH and no JAVA_HOME: no class archive")
        return 0
    if args == ["coordinates"]:
        print("\n".join(delta_coordinates()))
        return 0
    if args == ["jars"]:
        print(",".join(str(p) for p in delta_jars()))
        return 0
    if args in (["check"], ["fetch"]):
        try:
            fetch_jars() if args == ["fetch"] else delta_jars()
        except RuntimeError as err:
            print(f"setup: {err}", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m jobs.engine coordinates|jars|check|fetch|archive", file=sys.stderr)
    return 2
