"""The settings every embedded session gets from jobs.engine.session, whoever builds it
(a driver under spark-submit: tests/cluster/test_standalone.py)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("key, value", [
    ("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension"),
    ("spark.sql.session.timeZone", "UTC"),
    ("spark.driver.bindAddress", "127.0.0.1"),
    # Off on purpose (docs/design.md#whole-stage-code-generation-is-off): the fused scan is too large for the JIT.
    ("spark.sql.codegen.wholeStage", "false"),
    # The merge's aggregation sorts once after its shuffle
    # (docs/design.md#sort-aggregation-after-one-shuffle-16-mb-partitions).
    ("spark.sql.execution.useObjectHashAggregateExec", "false"),
    # PySpark records no Python call site per Column operation (seconds of an evaluating plan's time).
    ("spark.python.sql.dataFrameDebugging.enabled", "false"),
])
def test_session_settings(spark, key, value):
    assert spark.conf.get(key) == value


def test_caller_settings_override_the_base(spark):
    from jobs.engine import EMBEDDED_CONF

    assert EMBEDDED_CONF["spark.databricks.delta.snapshotPartitions"] == "4"
    assert spark.conf.get("spark.databricks.delta.snapshotPartitions") == "2"  # TEST_CONF's


def test_the_required_settings_are_in_every_embedded_session(spark):
    from jobs.engine import EMBEDDED_CONF, REQUIRED_CONF

    assert REQUIRED_CONF.items() <= EMBEDDED_CONF.items()
    assert all(spark.conf.get(key) == value for key, value in REQUIRED_CONF.items())


def test_column_operations_do_not_capture_their_call_site(spark):
    from pyspark.errors.utils import is_debugging_enabled

    assert not is_debugging_enabled()


def test_the_driver_jvm_maps_the_class_archive_that_setup_built(spark):
    """./scripts/test builds the archive (scripts/setup --class-archive) before the session starts;
    a JVM that must map it (-Xshare:on exits 1 on an archive it cannot use) maps it with this classpath."""
    import subprocess

    from jobs.engine import archive_options

    options = archive_options("")
    assert options, "no class archive for this JVM and these jars: run ./scripts/setup --class-archive"
    archive = options.split()[0]
    jvm = spark.sparkContext._jvm
    assert archive in list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    java = jvm.System.getProperty("java.home") + "/bin/java"
    mapped = subprocess.run([java, "-Xshare:on", archive, "-cp", jvm.System.getProperty("java.class.path"),
                             "-version"], capture_output=True, text=True, timeout=120)
    assert mapped.returncode == 0, mapped.stdout + mapped.stderr
