"""The engine's versions agree: the pinned pyspark and delta-spark are installed, delta-spark supports that
pyspark, and the Delta jars scripts/setup fetches are the ones built for that Spark line."""

from __future__ import annotations

import tomllib
from importlib.metadata import requires, version
from pathlib import Path

from packaging.requirements import Requirement

from jobs.engine.session import SCALA_VERSION, delta_coordinates

ROOT = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    """pyproject.toml's exact pins, by package name."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {name: pinned for name, _, pinned in (d.partition("==") for d in dependencies)}


def test_the_pinned_engine_is_installed():
    assert {name: version(name) for name in ("pyspark", "delta-spark")} == {
        name: pins()[name] for name in ("pyspark", "delta-spark")}


def test_delta_spark_supports_the_installed_pyspark():
    [pyspark] = [Requirement(r) for r in requires("delta-spark") or [] if Requirement(r).name == "pyspark"]
    assert pyspark.specifier.contains(version("pyspark")), f"delta-spark needs {pyspark}"


def test_the_delta_jars_are_built_for_the_installed_spark_line():
    line = ".".join(version("pyspark").split(".")[:2])
    assert delta_coordinates() == [f"io.delta:delta-spark_{line}_{SCALA_VERSION}:{version('delta-spark')}",
                                   f"io.delta:delta-storage:{version('delta-spark')}"]
