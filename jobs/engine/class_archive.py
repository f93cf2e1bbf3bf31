"""A class-data-sharing archive of the embedded driver JVM's classes (docs/operations.md#a-faster-jvm-start).

An embedded session's JVM loads some 25,000 classes while it starts and runs its first job. HotSpot can
map most of them from an archive instead of parsing and verifying each again, and a cold `export-jobs
run` of a small job starts faster for it (docs/performance.md#class-data-sharing-for-the-drivers-jvm-2026-12-07).
The archive is built once (`python -m jobs.engine archive`, from ./scripts/setup --class-archive;
`export-jobs setup-jars --class-archive`) beside the Delta jars, under a fingerprint of the JVM and of
the jars: a session whose JVM, pyspark or Delta jars changed finds no archive under its fingerprint
and starts as it did before.

An archive is only ever used whole: HotSpot crashes on a truncated one, so it is written under a
temporary name, checked by a JVM that must map it, and then renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.engine.jars import jars_dir

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PREFIX = "driver-classes-"
# HotSpot's messages about an archive it cannot use go to the JVM's stdout, which is the CLI's: a
# fingerprint names archives, so a mismatch is unexpected, and then the JVM starts as without one.
QUIET = "-Xlog:cds*=off"
ARCHIVE_OPTIONS = ("-XX:SharedArchiveFile", "-XX:ArchiveClassesAtExit", "-Xshare")


def spark_home() -> Path:
    """The Spark whose jars the embedded driver's classpath holds: SPARK_HOME, else pyspark's own."""
    configured = os.environ.get("SPARK_HOME")
    if configured:
        return Path(configured)
    import pyspark

    return Path(pyspark.__file__).parent


def java_home() -> Path | None:
    """The JVM that spark-submit starts: JAVA_HOME's, else the `java` on PATH; None if there is none."""
    configured = os.environ.get("JAVA_HOME")
    if configured:
        return Path(configured)
    found = shutil.which("java")
    return Path(found).resolve().parents[1] if found else None


def fingerprint(folder: Path | None = None) -> str | None:
    """What an archive depends on: the JVM's build, every jar of Spark's classpath and the Delta jars
    (name, size, time) in `folder` (default: jars_dir()); None when there is no JVM to fingerprint."""
    home = java_home()
    if home is None:
        return None
    digest = hashlib.sha256(str(home.resolve()).encode())
    jvm_files = [home / "release", *sorted(home.glob("lib/server/libjvm.*"))]
    jars = [*sorted((spark_home() / "jars").glob("*.jar")), *sorted((folder or jars_dir()).glob("*.jar"))]
    for path in [*jvm_files, *jars]:
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def archive_path(folder: Path | None = None) -> Path | None:
    """Where this JVM and classpath's archive is (or would be); None when there is no JVM."""
    folder = folder or jars_dir()
    key = fingerprint(folder)
    return folder / f"{PREFIX}{key}.jsa" if key else None


def archive_options(java_options: str) -> str:
    """The options that make the driver JVM map its archive, if one was built for it and the driver's
    options (the config's `spark.driver.extraJavaOptions`) do not choose their own."""
    if any(option in java_options for option in ARCHIVE_OPTIONS):
        return ""
    path = archive_path()
    return f"-XX:SharedArchiveFile={path} {QUIET}" if path is not None and path.is_file() else ""


def build_archive(folder: Path | None = None) -> Path | None:
    """Builds this JVM and classpath's archive unless it exists: runs a small Delta workload in a
    session of its own, whose JVM writes the classes it loaded when it exits. Removes the archives of
    other fingerprints (a JVM or pyspark since replaced). None when there is no JVM. Must run in a
    process that has no Spark session yet. Raises RuntimeError, as fetch_jars does, when it cannot."""
    target = archive_path(folder)
    if target is None:
        return None
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    try:
        classpath, java = _run_workload(partial)
        check = subprocess.run([java, "-Xshare:on", f"-XX:SharedArchiveFile={partial}", "-cp", classpath,
                                "-version"], capture_output=True, text=True, timeout=120)
        if check.returncode != 0 or not partial.is_file():
            raise RuntimeError(f"the JVM did not write a usable class archive: {check.stderr.strip()[-500:]}")
        partial.replace(target)
    except (OSError, subprocess.SubprocessError) as err:
        raise RuntimeError(f"could not build the class archive {target}: {err}") from err
    finally:
        partial.unlink(missing_ok=True)
    for stale in target.parent.glob(f"{PREFIX}*.jsa"):
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


def _run_workload(archive: Path) -> tuple[str, str]:
    """Starts a session whose JVM archives its classes at exit, runs `_exercise` in it, then stops it
    and waits for its JVM; the JVM's classpath and java executable."""
    from pyspark import SparkContext

    from jobs.engine.session import build_session

    if SparkContext._gateway is not None:
        raise RuntimeError("a class archive is built in a process that has no Spark session yet")
    spark = build_session("local[2]", "export-jobs-class-archive", {
        # QUIET: what it cannot archive (generated classes, signed jars) it would list on stdout.
        "spark.driver.extraJavaOptions": f"-XX:ArchiveClassesAtExit={archive} {QUIET}",
        "spark.sql.shuffle.partitions": "2",
    })
    gateway, jvm = SparkContext._gateway, spark.sparkContext._jvm
    assert gateway is not None and jvm is not None
    try:
        classpath = jvm.System.getProperty("java.class.path")
        java = jvm.System.getProperty("java.home") + "/bin/java"
        with tempfile.TemporaryDirectory(prefix="export-jobs-class-archive-") as scratch:
            _exercise(spark, scratch)
    finally:
        # On failure too: the JVM writes the archive as it exits, which must be over before the caller
        # removes a partial one.
        spark.stop()
        gateway.proc.stdin.close()  # the gateway's JVM exits when its stdin closes
        gateway.proc.wait(timeout=600)
        SparkContext._gateway = None
        SparkContext._jvm = None
    return classpath, java


def _exercise(spark: SparkSession, scratch: str) -> None:
    """What an export runs, on a few rows: Delta writes and reads, an aggregation, a join, a MERGE into
    a table with the change feed, its history, the feed and an older version."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    table, copy = f"{scratch}/profiles", f"{scratch}/mirror"
    spark.range(2000).select(
        F.concat(F.lit("p"), F.col("id").cast("string")).alias("key"), (F.col("id") % 7).alias("tier"),
        F.create_map(F.lit("email"), F.array(F.struct(F.col("id").cast("string").alias("id")))).alias("ids"),
        F.current_timestamp().alias("ts"),
    ).write.format("delta").save(table)
    profiles = spark.read.format("delta").load(table)
    merged = profiles.groupBy("key").agg(F.max_by("tier", "ts").alias("tier"), F.first("ids").alias("ids"))
    audience = merged.join(profiles.select("key", "ts"), "key")
    audience.write.format("delta").option("delta.enableChangeDataFeed", "true").save(copy)
    (DeltaTable.forPath(spark, copy).alias("t").merge(audience.where("tier = 1").alias("s"), "t.key = s.key")
     .whenMatchedUpdateAll().whenNotMatchedInsertAll().whenNotMatchedBySourceDelete().execute())
    DeltaTable.forPath(spark, copy).history().collect()
    spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 0).load(copy).count()
    spark.read.format("delta").option("versionAsOf", 0).load(copy).count()
