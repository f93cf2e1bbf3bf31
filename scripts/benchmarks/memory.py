"""The driver's peak memory while our jobs run: Python RSS and JVM heap."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def python_rss_mb() -> float:
    """This process's resident memory, from /proc (no psutil)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def jvm(spark: SparkSession) -> Any:
    """The driver JVM's py4j view, to call Java classes through (`jvm(spark).java.lang.System`)."""
    view = spark.sparkContext._jvm
    if view is None:
        raise RuntimeError("the SparkContext has no JVM gateway")
    return view


def jvm_heap_mb(spark: SparkSession) -> tuple[float, float]:
    """(used, max) heap of the driver JVM, which in local mode also runs the tasks."""
    runtime = jvm(spark).java.lang.Runtime.getRuntime()
    return (runtime.totalMemory() - runtime.freeMemory()) / 2**20, runtime.maxMemory() / 2**20


class PeakMemory:
    """Samples the driver's Python RSS and JVM heap in use while its blocks run (it may be
    entered again: only our job runs are sampled, not DuckDB in this same process); keeps the peaks."""

    INTERVAL_S = 0.2

    def __init__(self, spark: SparkSession) -> None:
        self.spark, self.python_mb, self.jvm_mb = spark, 0.0, 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while True:
            self.python_mb = max(self.python_mb, python_rss_mb())
            self.jvm_mb = max(self.jvm_mb, jvm_heap_mb(self.spark)[0])
            if self._stop.wait(self.INTERVAL_S):
                return

    def __enter__(self) -> PeakMemory:
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="memory-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

