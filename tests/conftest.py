"""One SparkSession for the whole test session, created only when a test asks for it."""

from __future__ import annotations

import os
import time

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# The CLI, server and spark-submit processes the tests start live seconds on tiny data: C2's
# compilations would cost more CPU than they win back, on 2 cores. spark-submit adds SPARK_SUBMIT_OPTS
# to the driver's command line (JAVA_TOOL_OPTIONS would print a note on stderr, which the CLI tests
# read); tests/cluster gives its executors the same. The shared session below lives as long as the
# suite and keeps the JVM's defaults, as the benchmark does.
SHORT_LIVED_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
os.environ.setdefault("SPARK_SUBMIT_OPTS", SHORT_LIVED_JVM)
os.environ.setdefault("SPARK_DAEMON_JAVA_OPTS", SHORT_LIVED_JVM)  # the standalone master and workers
# Collected timestamps come back as naive local times: make local time UTC.
os.environ["TZ"] = "UTC"
time.tzset()

TEST_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.adaptive.enabled": "true",
}


@pytest.fixture(scope="session")
def spark():
    from jobs.engine import build_session

    short_lived = os.environ.pop("SPARK_SUBMIT_OPTS", None)
    try:
        session = build_session("local[2]", "export-jobs-tests", TEST_CONF)
    finally:
        if short_lived is not None:
            os.environ["SPARK_SUBMIT_OPTS"] = short_lived
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def lake(spark, tmp_path_factory):
    """A small generated lake shared by the export tests: (root, LakeSpec)."""
    from jobs.spec import load_config
    from sample_lake import LakeSpec, generate, sample_config

    root = tmp_path_factory.mktemp("lake")
    spec = LakeSpec(profiles=200, segments=4, events_per_profile=2, fragments_per_profile=2,
                    bad_fragments=3, empty_profiles=5)
    conf = root / "lake.toml"
    conf.write_text(sample_config(root))
    generate(spark, load_config(conf), spec)
    return root, spec


@pytest.fixture
def deployment(lake, tmp_path):
    """A config over the shared lake with its own job table and destination."""
    from sample_lake import sample_config

    root, _ = lake
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(root, job_table=str(tmp_path / "jobs"), destination=str(tmp_path / "out")))
    return conf


@pytest.fixture
def evaluating(lake, tmp_path):
    """A config over the shared lake with a job table, destination and segmentation dataset of its own."""
    from jobs.spec import load_config
    from sample_lake import sample_config

    root, _ = lake
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(root, job_table=str(tmp_path / "jobs"), destination=str(tmp_path / "out"),
                                  segmentation=str(tmp_path / "memberships")))
    return load_config(conf)
