"""A Spark standalone cluster on 127.0.0.1, started from the pyspark wheel: a master and N workers.

`SPARK_HOME` is the installed pyspark package folder; `bin/spark-class` starts the master
and each worker as its own JVM, each worker with its own work folder (where its executors'
logs go). Used by `scripts/bench settings`, `scripts/bench scaling` and tests/cluster.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 90


@dataclass(frozen=True)
class Cluster:
    url: str  # spark://127.0.0.1:PORT
    worker_dirs: list[Path]  # SPARK_WORKER_DIR of each worker: app-…/EXECUTOR_ID/ per executor it ran


def spark_home() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def wait_for_line(log: Path, text: str, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{log} has no {text!r} after {timeout:.0f} s:\n{log.read_text()[-2000:]}")
        time.sleep(0.5)


@contextmanager
def standalone_cluster(base: Path, workers: int = 2, cores: int = 1, memory: str = "2g") -> Iterator[Cluster]:
    """A master and `workers` workers of `cores` cores and `memory` each; all stopped on exit,
    even when starting failed half-way. Logs go to `base`."""
    base.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_HOME": spark_home(), "SPARK_LOCAL_IP": "127.0.0.1"}
    spark_class = str(Path(spark_home()) / "bin" / "spark-class")
    port = free_port()
    started: list[subprocess.Popen] = []

    def start(name: str, args: list[str], extra_env: dict[str, str]) -> Path:
        log = base / f"{name}.log"
        with log.open("w") as out:
            started.append(subprocess.Popen([spark_class, *args], env={**env, **extra_env}, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True))
        return log

    try:
        start("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                         "--webui-port", str(free_port())], {})
        url = f"spark://127.0.0.1:{port}"
        wait_for_port(port)
        dirs, logs = [], []
        for n in range(workers):
            work = base / f"worker-{n}"
            dirs.append(work)
            logs.append(start(f"worker-{n}", ["org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
                                              "--cores", str(cores), "--memory", memory,
                                              "--webui-port", str(free_port())], {"SPARK_WORKER_DIR": str(work)}))
        for log in logs:
            wait_for_line(log, "Successfully registered with master")
        yield Cluster(url, dirs)
    finally:
        for process in reversed(started):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
