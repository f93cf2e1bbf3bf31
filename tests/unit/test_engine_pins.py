"""The versions agree: scripts/constraints.txt's engine is installed, it is within the package's ranges,
delta-spark supports that pyspark, and the Delta jars are the ones built for that Spark line."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from jobs.engine import SCALA_VERSION, delta_coordinates

ROOT = Path(__file__).resolve().parents[2]


def constraints() -> dict[str, str]:
    """scripts/constraints.txt's exact versions, by canonical package name."""
    lines = (ROOT / "scripts" / "constraints.txt").read_text().splitlines()
    pins = [line.partition("==") for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(name): pinned for name, _, pinned in pins}


def installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def test_the_constrained_versions_are_the_installed_ones():
    """The bench and pack extras' packages are installed by their scripts only, but at these versions too."""
    found = {name: installed(name) for name in constraints()}
    assert {name: v for name, v in found.items() if v is not None} == {
        name: pinned for name, pinned in constraints().items() if found[name] is not None}
    assert {"pyspark", "delta-spark", "pytest", "setuptools"} <= {name for name, v in found.items() if v}


def test_every_dependency_of_the_package_and_its_extras_allows_the_constrained_version():
    wanted = [Requirement(r) for r in requires("segment-export-jobs") or []]
    assert {"pyspark", "delta-spark", "pydantic", "deltalake"} <= {r.name for r in wanted}
    outside = [str(r) for r in wanted
               if not r.specifier.contains(constraints()[canonicalize_name(r.name)], prereleases=True)]
    assert outside == []


def test_the_engine_is_an_extra_and_the_runtime_takes_ranges():
    wanted = [Requirement(r) for r in requires("segment-export-jobs") or []]
    spark = {r.name for r in wanted if r.marker is not None and 'extra == "spark"' in str(r.marker)}
    runtime = [r for r in wanted if r.marker is None]
    assert spark == {"pyspark", "delta-spark"}
    assert [str(r) for r in runtime if any(s.operator == "==" for s in r.specifier)] == []


def test_delta_spark_supports_the_installed_pyspark():
    [pyspark] = [Requirement(r) for r in requires("delta-spark") or [] if Requirement(r).name == "pyspark"]
    assert pyspark.specifier.contains(version("pyspark")), f"delta-spark needs {pyspark}"


def test_the_delta_jars_are_built_for_the_installed_spark_line():
    line = ".".join(version("pyspark").split(".")[:2])
    assert delta_coordinates() == [f"io.delta:delta-spark_{line}_{SCALA_VERSION}:{version('delta-spark')}",
                                   f"io.delta:delta-storage:{version('delta-spark')}"]
