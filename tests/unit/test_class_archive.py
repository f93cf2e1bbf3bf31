"""The driver JVM's class archive (jobs/engine/class_archive.py): where it is, when a session uses it,
and that a JVM, its jars or a user's own options each keep a stale or foreign archive out."""

from __future__ import annotations

import pytest

from jobs.engine.class_archive import QUIET, archive_options, archive_path, fingerprint
from jobs.engine.session import driver_java_options


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A JVM, a Spark and a jars folder of this test's own."""
    java = tmp_path / "jdk"
    (java / "lib" / "server").mkdir(parents=True)
    (java / "release").write_text('JAVA_VERSION="17.0.15"\n')
    (java / "lib" / "server" / "libjvm.so").write_bytes(b"jvm")
    spark = tmp_path / "spark"
    (spark / "jars").mkdir(parents=True)
    (spark / "jars" / "spark-core_2.13-4.2.0.jar").write_bytes(b"core")
    monkeypatch.setenv("JAVA_HOME", str(java))
    monkeypatch.setenv("SPARK_HOME", str(spark))
    monkeypatch.setenv("EXPORT_JOBS_JARS", str(tmp_path / "jars"))
    return tmp_path


def test_without_an_archive_the_jvm_starts_as_before(machine):
    assert archive_options("") == ""
    assert "SharedArchiveFile" not in driver_java_options({})


def test_a_built_archive_is_mapped_quietly(machine):
    path = archive_path()
    assert path is not None and path.parent == machine / "jars"
    path.parent.mkdir()
    path.write_bytes(b"archive")
    assert archive_options("") == f"-XX:SharedArchiveFile={path} {QUIET}"
    options = driver_java_options({"spark.driver.extraJavaOptions": "-Xmx2g"})
    assert options.startswith(f"-Xmx2g -XX:SharedArchiveFile={path} {QUIET} -Dlog4j2.configurationFile=")


@pytest.mark.parametrize("own", ["-Xshare:off", "-XX:SharedArchiveFile=/opt/app.jsa",
                                 "-XX:ArchiveClassesAtExit=/tmp/new.jsa"])
def test_the_users_own_sharing_options_win(machine, own):
    path = archive_path()
    assert path is not None
    path.parent.mkdir()
    path.write_bytes(b"archive")
    assert archive_options(own) == ""
    assert driver_java_options({"spark.driver.extraJavaOptions": own}).count("-X") == 1


@pytest.mark.parametrize("change", ["jar", "new jar", "jvm"])
def test_another_jvm_or_classpath_has_another_archive(machine, change):
    before = fingerprint()
    if change == "jar":  # a jar rebuilt in place: same name, other content
        jar = machine / "spark" / "jars" / "spark-core_2.13-4.2.0.jar"
        jar.write_bytes(b"core, rebuilt")
    elif change == "new jar":
        (machine / "spark" / "jars" / "spark-sql_2.13-4.2.0.jar").write_bytes(b"sql")
    else:
        (machine / "jdk" / "release").write_text('JAVA_VERSION="21.0.5"\n')
    assert fingerprint() != before


def test_no_java_no_archive(machine, monkeypatch):
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(machine))
    assert fingerprint() is None and archive_path() is None and archive_options("") == ""


def test_new_delta_jars_have_another_archive_and_other_files_do_not(machine):
    before = fingerprint()
    (machine / "spark" / "jars" / "README").write_text("not a jar")
    (machine / "jars").mkdir()
    (machine / "jars" / "driver-classes-0123456789abcdef.jsa").write_bytes(b"an archive")
    assert fingerprint() == before
    (machine / "jars" / "delta-spark_4.2_2.13-4.4.0.jar").write_bytes(b"delta")
    assert fingerprint() != before
