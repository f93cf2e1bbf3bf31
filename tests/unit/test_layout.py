"""The package's layers (docs/design.md#layers), read from the source: who may import whom.

- Layers are folders of `jobs/`, from the bottom: spec, planner, engine, control,
  shells. A module imports only its own layer and the layers below it, and no
  import of a module runs into a cycle.
- Only `jobs/engine` touches Spark: no other module imports pyspark, delta-spark
  or py4j when it runs (type-only imports under TYPE_CHECKING do not load them).
- Each layer has a face (`__init__` with `__all__`); scripts/ and the tests
  outside tests/unit import only faces.
- One module builds SparkSessions.
- The archive spark-submit ships (`scripts/pyfiles`) and the installed package
  hold every module.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "jobs"
SPARK = ("pyspark", "delta", "py4j")
LAYERS = ("jobs.spec", "jobs.planner", "jobs.engine", "jobs.control", "jobs.shells")
# The package's own entry files (python -m jobs, and the file spark-submit runs) sit on top of the layers.
ENTRY_FILES = {"jobs", "jobs.__main__", "jobs.submit"}
FACES = (*LAYERS, "jobs.shells.http", "jobs")  # `jobs`: the Python API (ExportJobs)


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


def runtime_imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Every module a file imports when it runs: at any depth (functions included), or only at import time."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for branch in node.orelse:
                visit(branch)
            return
        if top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            # `from jobs.spec import pql` imports the submodule jobs.spec.pql
            names.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in modules())
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return names


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def layer_of(module: str) -> int:
    """The module's layer, by folder: 0 spec … 4 shells; the entry files are above them all."""
    for level, layer in enumerate(LAYERS):
        if _within(module, (layer,)):
            return level
    assert module in ENTRY_FILES, f"{module} is in no layer: move it into one of {', '.join(LAYERS)}"
    return len(LAYERS)


@pytest.mark.parametrize("module", list(modules()))
def test_every_module_imports_only_its_layer_and_below(module):
    ours = {n for n in runtime_imports(modules()[module]) if _within(n, ("jobs",)) and n != "jobs"}
    above = sorted(n for n in ours if layer_of(n) > layer_of(module))
    assert above == [], f"{module} imports {above}, above its layer"


def test_no_import_cycles():
    graph = {m: {n for n in runtime_imports(p, top_level_only=True) if n in modules() and n != m}
             for m, p in modules().items()}
    # A package's face importing its own modules is how packages load; a module importing its own
    # layer's face is a cycle through that face.
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, [*path, nxt])
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    assert cycles == []


@pytest.mark.parametrize("module", [m for m in modules() if not m.startswith("jobs.engine")])
def test_only_the_engine_imports_spark(module):
    spark = sorted(n for n in runtime_imports(modules()[module]) if _within(n, SPARK))
    assert spark == [], f"{module} imports {spark}: move the Spark code into jobs/engine"


@pytest.mark.parametrize("face", FACES)
def test_each_layer_has_a_face(face):
    module = importlib.import_module(face)
    assert module.__doc__ and module.__all__, f"{face}/__init__.py needs a docstring and __all__"
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def _outside_files() -> list[Path]:
    tests = [p for p in (ROOT / "tests").rglob("*.py") if "unit" not in p.relative_to(ROOT / "tests").parts]
    return sorted([*(ROOT / "scripts").rglob("*.py"), *tests, *(ROOT / "conf").rglob("*.py")])


@pytest.mark.parametrize("path", _outside_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_scripts_and_tests_import_only_faces(path):
    private = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and _within(node.module, ("jobs",)):
            if node.module not in FACES:
                private.append(node.module)
            else:
                face = importlib.import_module(node.module)
                private += [f"{node.module}.{a.name}" for a in node.names
                            if a.name not in face.__all__ and f"{node.module}.{a.name}" not in modules()]
        elif isinstance(node, ast.Import):
            private += [a.name for a in node.names if _within(a.name, ("jobs",)) and a.name not in FACES]
    assert private == [], f"{path.relative_to(ROOT)} reaches past a face: {private}"


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


def test_the_package_declares_every_resource_it_ships():
    """Files beside the modules (e.g. the quiet log4j configuration) reach an installed package or a PEX."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    resources = {path for path in PACKAGE.rglob("*") if path.is_file() and path.suffix not in (".py", ".pyc")}
    undeclared = sorted(str(p.relative_to(ROOT)) for p in resources
                        if not any(p.match(pattern) and ".".join(p.parent.relative_to(ROOT).parts) == package
                                   for package, patterns in declared.items() for pattern in patterns))
    assert undeclared == []


def test_the_cli_loads_spark_only_for_the_commands_that_run_jobs():
    check = ("import sys, jobs.shells.cli, jobs.control, jobs.spec; "
             "print(sorted(m for m in ('pyspark', 'fastapi') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", check], check=True, capture_output=True, text=True, cwd=ROOT)
    assert loaded.stdout.strip() == "[]"
