"""The package's layers (README, "Layout"), read from the source: who may import whom.

- Only `jobs/engine` touches Spark: no other module imports pyspark, delta-spark
  or py4j when it runs (type-only imports under TYPE_CHECKING do not load them);
  the sample-lake generator may, since it writes lakes with Spark.
- `jobs/engine` builds on the spec and plan layer only, never on the control
  plane (job table, leases, schedules) or the shells (CLI, HTTP, spark-submit).
- One module builds SparkSessions.
- The archive spark-submit ships (`scripts/pyfiles`) and the installed package
  hold every module.
"""

from __future__ import annotations

import ast
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "jobs"
SPARK = ("pyspark", "delta", "py4j")
# What the engine may build on: the spec and plan layer.
ENGINE_MAY_IMPORT = ("jobs.engine", "jobs.plan", "jobs.schema", "jobs.model", "jobs.config", "jobs.pql",
                     "jobs.memberships")
SPARK_OUTSIDE_ENGINE = {"jobs.sample"}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(path: Path) -> set[str]:
    """Every module a file imports when it runs, at any depth (functions included)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "jobs":
            names.update(f"jobs.{alias.name}" for alias in node.names)  # from jobs import pql
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return names


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


@pytest.mark.parametrize("module", [m for m in modules() if not m.startswith("jobs.engine")])
def test_only_the_engine_imports_spark(module):
    if module in SPARK_OUTSIDE_ENGINE:
        return
    spark = sorted(n for n in runtime_imports(modules()[module]) if _within(n, SPARK))
    assert spark == [], f"{module} imports {spark}: move the Spark code into jobs/engine"


@pytest.mark.parametrize("module", [m for m in modules() if m.startswith("jobs.engine")])
def test_the_engine_builds_only_on_the_spec_and_plan(module):
    ours = {n for n in runtime_imports(modules()[module]) if _within(n, ("jobs",))}
    outside = sorted(n for n in ours if not _within(n, ENGINE_MAY_IMPORT))
    assert outside == [], f"{module} imports {outside}, above the engine's layer"


def test_one_module_builds_spark_sessions():
    builders = sorted(m for m, path in modules().items() if "SparkSession.builder" in path.read_text())
    assert builders == ["jobs.engine.session"]


def test_the_py_files_archive_holds_every_module(tmp_path):
    archive = tmp_path / "export-jobs.zip"
    subprocess.run([str(ROOT / "scripts" / "pyfiles"), str(archive)], check=True, capture_output=True)
    expected = {str(path.relative_to(ROOT)) for path in PACKAGE.rglob("*.py")}
    assert set(zipfile.ZipFile(archive).namelist()) == expected


def test_the_installed_package_finds_every_subpackage():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    include = setuptools["packages"]["find"]["include"]
    packages = {m for m, path in modules().items() if path.name == "__init__.py"}
    assert all(any(p == i or (i.endswith(".*") and p.startswith(i[:-1])) for i in include) for p in packages)
