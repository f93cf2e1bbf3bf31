"""The one place that builds a SparkSession with Delta Lake.

The Delta jars are not in the delta-spark wheel: scripts/setup copies them once
from Maven into a cache folder, and sessions load them from there, so nothing
is downloaded when a job or a test runs.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Mapping

SCALA_VERSION = "2.13"
DEFAULT_JARS_DIR = Path(__file__).resolve().parent.parent / ".cache" / "jars"

# An embedded session stays on loopback; under spark-submit the cluster decides.
LOCAL_CONF = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
# Settings every session gets; the config's [spark] table and callers may override them.
BASE_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # Delta rebuilds table state with this many tasks; its default of 50 is
    # tuned for clusters and costs seconds per read on a small machine.
    "spark.databricks.delta.snapshotPartitions": "4",
    # Whole-stage codegen fuses the scan's wide projection (identities, leaves, one
    # column per segment) into one method too large for the JIT, which then
    # interprets it; per-operator codegen keeps methods small. Measured at 1M
    # profiles (#7): exports and the plain read+write floor both faster without it.
    "spark.sql.codegen.wholeStage": "false",
    # The merge's aggregation (collect_list and max_by over strings and structs) cannot
    # use HashAggregate; ObjectHashAggregate falls back to sorting after 128 keys on
    # both sides of the shuffle and shuffles its buffers. A sort aggregation over input
    # that merge_profiles sorts once, after the shuffle, does half the work (#7).
    "spark.sql.execution.useObjectHashAggregateExec": "false",
    # AQE coalesces shuffle partitions to 64 MB, which gave the merge's CPU-heavy
    # reduce stage 3 or 4 tasks on 2 cores, one of them idle at the end; 16 MB keeps
    # several tasks per core (#7). Written files stay tens of MB.
    "spark.sql.adaptive.advisoryPartitionSizeInBytes": "16m",
    # Keep the destination readable by other Delta readers (SPEC §6).
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
}


def delta_coordinates() -> list[str]:
    """Maven coordinates of the jars matching the installed delta-spark wheel."""
    delta = version("delta-spark")
    return [f"io.delta:delta-spark_{SCALA_VERSION}:{delta}", f"io.delta:delta-storage:{delta}"]


def jars_dir() -> Path:
    return Path(os.environ.get("EXPORT_JOBS_JARS", DEFAULT_JARS_DIR))


def delta_jars() -> list[Path]:
    """Paths of the cached Delta jars; raises with the fix when one is missing."""
    folder = jars_dir()
    paths = []
    for coordinate in delta_coordinates():
        _, artifact, ver = coordinate.split(":")
        path = folder / f"{artifact}-{ver}.jar"
        if not path.is_file():
            raise RuntimeError(
                f"Delta jar {path} is missing: run ./scripts/setup to fetch {coordinate} "
                "(or point EXPORT_JOBS_JARS at a folder that has it)"
            )
        paths.append(path)
    return paths


def build_session(
    master: str = "local[*]",
    app_name: str = "export-jobs",
    conf: Mapping[str, str] | None = None,
):
    """Get or create the SparkSession with Delta's extensions and catalog."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    settings = {**BASE_CONF, **LOCAL_CONF}
    settings["spark.jars"] = ",".join(str(p) for p in delta_jars())
    settings.update(conf or {})
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def main(argv: list[str] | None = None) -> int:
    """`python -m jobs.session coordinates|jars|check`: used by scripts/setup and scripts/submit."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["coordinates"]:
        print("\n".join(delta_coordinates()))
        return 0
    if args == ["jars"]:
        print(",".join(str(p) for p in delta_jars()))
        return 0
    if args == ["check"]:
        try:
            delta_jars()
        except RuntimeError as err:
            print(f"setup: {err}", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m jobs.session coordinates|jars|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
