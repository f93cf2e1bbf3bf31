"""The spark-submit command lines scripts/submit builds (`--dry-run` prints them), against the
forms of Spark's Python package-management guide (docs/operations.md#cluster-deploy-mode-the-packed-driver)."""

from __future__ import annotations

import subprocess
from itertools import pairwise
from pathlib import Path

from jobs.engine import delta_coordinates

ROOT = Path(__file__).resolve().parents[2]
APP = ["--", "--conf", "export.toml", "--job-id", "42"]


def dry_run(*args: str) -> list[str]:
    result = subprocess.run([str(ROOT / "scripts" / "submit"), "--dry-run", *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.splitlines()


def pairs(command: list[str]) -> set[tuple[str, str]]:
    return set(pairwise(command))


def test_cluster_mode_ships_the_pex_as_a_file_and_names_it_the_python():
    command = dry_run("--master", "yarn", "--deploy-mode", "cluster", *APP)
    pex = str(ROOT / "build" / "export-jobs.pex")
    assert {("--deploy-mode", "cluster"), ("--files", pex), ("--conf", "spark.pyspark.python=./export-jobs.pex")} \
        <= pairs(command)
    assert "--py-files" not in command  # the package is in the PEX
    assert command[-len(APP):] == [str(ROOT / "jobs" / "submit.py"), *APP[1:]]
    jars = dict(pairs(command))["--jars"].split(",")
    assert [Path(j).name for j in jars] == [f"{artifact}-{version}.jar" for _, artifact, version in
                                            (c.split(":") for c in delta_coordinates())]


def test_the_equals_form_of_deploy_mode_is_cluster_mode_too():
    assert ("--files", str(ROOT / "build" / "export-jobs.pex")) in pairs(dry_run("--deploy-mode=cluster", *APP))


def test_client_mode_ships_the_package_for_py_files():
    command = dry_run("--master", "spark://127.0.0.1:7077", *APP)
    assert ("--py-files", str(ROOT / "build" / "export-jobs.zip")) in pairs(command)
    assert "--files" not in command and not any(a.startswith("spark.pyspark.python") for a in command)


def test_client_mode_with_the_pex_runs_the_driver_from_it_here():
    command = dry_run("--pex", "--master", "spark://127.0.0.1:7077", *APP)
    pex = str(ROOT / "build" / "export-jobs.pex")
    assert {("--files", pex), ("--conf", "spark.pyspark.python=./export-jobs.pex"),
            ("--conf", f"spark.pyspark.driver.python={pex}")} <= pairs(command)
