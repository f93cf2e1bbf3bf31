"""The package as a user installs it: the wheel built from this checkout, in a fresh virtualenv,
run from a folder outside the checkout. Nothing may depend on the checkout's files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from jobs.engine import delta_coordinates, jar_file_name, jars_dir
from jobs.spec import load_config

from ..reference import read_rows

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
JOB = {
    "fields": "identities.id,personalEmail.address",
    "filter": {"segments": [{"segmentId": "segment-01"}]},
    "destination": {"datasetId": "audience"},
    "schema": {"name": "_xdm.context.profile"},
}


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"{command}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel installed. Its dependencies are this test run's (a .pth
    file): installing pyspark again would take minutes, and what is tested is the package itself."""
    root = tmp_path_factory.mktemp("package")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
        "--wheel-dir", root / "wheels", ROOT)
    [wheel] = (root / "wheels").glob("segment_export_jobs-*.whl")
    venv = root / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    # A plain path: the .pth files in it (our editable install's finder) are not processed.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", wheel)
    return venv


def outside(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user outside the checkout: their own cache folder, no checkout paths."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPORT_JOBS_", "PYTHON"))}
    return {**env, "XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path), **extra}


def maven_folder(tmp_path: Path) -> Path:
    """This checkout's Delta jars laid out as a Maven repository, with SHA-1 files as Maven Central's."""
    repository = tmp_path / "maven"
    for coordinate in delta_coordinates():
        group, artifact, version = coordinate.split(":")
        folder = repository.joinpath(*group.split("."), artifact, version)
        folder.mkdir(parents=True)
        jar = folder / jar_file_name(coordinate)
        shutil.copy(jars_dir() / jar_file_name(coordinate), jar)
        (folder / f"{jar.name}.sha1").write_text(hashlib.sha1(jar.read_bytes()).hexdigest())
    return repository


def test_the_installed_package_runs_from_its_own_files(venv, tmp_path):
    env = outside(tmp_path)
    version = run(venv / "bin" / "export-jobs", "--version", cwd=tmp_path, env=env)
    assert version.startswith("export-jobs 0.1.0 (pyspark ") and "delta-spark " in version
    where = json.loads(run(venv / "bin" / "python", "-c", "import json, jobs.engine as e, jobs.engine.session as s; "
                           "print(json.dumps([__import__('jobs').__file__, str(s.quiet_log4j()), str(e.jars_dir())]))",
                           cwd=tmp_path, env=env))
    assert [Path(p).is_relative_to(venv) for p in where[:2]] == [True, True], where
    assert Path(where[2]) == tmp_path / "cache" / "export-jobs" / "jars"  # the user's cache, not the checkout
    console = run(venv / "bin" / "python", "-c", "from importlib.resources import files; "
                  "print(sorted(p.name for p in files('jobs.shells.http.console').iterdir() "
                  "if p.is_file() and p.suffix != '.py'))", cwd=tmp_path, env=env)
    assert console.strip() == "['console.css', 'console.js', 'index.html']"  # the web console's page


def test_setup_jars_then_a_job_runs_in_the_installed_package(venv, deployment, tmp_path):
    repository = maven_folder(tmp_path).as_uri()
    env = outside(tmp_path, EXPORT_JOBS_CONF=str(deployment), EXPORT_JOBS_MAVEN_REPOSITORY=repository)
    cli = venv / "bin" / "export-jobs"
    fetched = json.loads(run(cli, "setup-jars", cwd=tmp_path, env=env))["jars"]
    assert [Path(p).name for p in fetched] == [jar_file_name(c) for c in delta_coordinates()]
    assert all(Path(p).parent == tmp_path / "cache" / "export-jobs" / "jars" for p in fetched)

    (tmp_path / "job.json").write_text(json.dumps(JOB))
    created = json.loads(run(cli, "create", "job.json", cwd=tmp_path, env=env))
    ran = json.loads(run(cli, "run", str(created["id"]), cwd=tmp_path, env=env))
    assert ran["status"] == "SUCCEEDED", ran.get("errors")
    config = load_config(deployment)
    rows = read_rows(config.resolve(config.destination_datasets[0].path))
    assert len(rows) == ran["metrics"]["totalExportedProfileCounter"] > 0


def test_the_dockerfile_builds_where_a_container_engine_runs():
    engine = shutil.which("docker")
    if engine is None or subprocess.run([engine, "info"], capture_output=True, timeout=60).returncode != 0:
        pytest.skip("no container engine runs on this machine (`docker info` failed): conf/examples/Dockerfile "
                    "was not built; tests/unit/test_examples.py checks what it copies and runs")
    run(engine, "build", "--quiet", "-f", "conf/examples/Dockerfile", "-t", "export-jobs:test", ".", cwd=ROOT)
    assert run(engine, "run", "--rm", "export-jobs:test", "--version").startswith("export-jobs 0.1.0")
