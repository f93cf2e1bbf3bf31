"""Repetition: every figure's runs go in rounds, so that the machine's load touches every figure alike."""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    """'250k', '1M', '0.25M' or '20000' as a number of profiles."""
    text = text.strip()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    number = float(text[:-1] if scale > 1 else text)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive size")
    return int(number * scale)


def parse_sizes(text: str) -> list[int]:
    return [parse_size(part) for part in text.split(",") if part.strip()]

# ---------------------------------------------------------------- repetition


@dataclass(frozen=True)
class Sample:
    seconds: float
    rows: int  # rows written
    output: str  # the table or file written, for the key check
    overhead_s: float | None = None  # ours: run_job's wall time minus profileExportTime
    record_overhead_s: float | None = None  # ours: the record's totalTime minus profileExportTime
    job_id: int | None = None  # ours: the job's id, which names its Spark job group
    identity_graph_rounds: int | None = None  # ours, under identityGraph pdg


@dataclass(frozen=True)
class Scenario:
    key: str
    name: str
    engine: str  # "ours", "floor", "pyspark" or "duckdb": the chart's colour
    run: Callable[[str], Sample]  # given a name for its output, unique per run


@dataclass(frozen=True)
class Figure:
    name: str
    engine: str
    samples: list[Sample]

    @property
    def seconds(self) -> list[float]:
        return [sample.seconds for sample in self.samples]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def last(self) -> Sample:
        return self.samples[-1]


def interleave(scenarios: list[Scenario], runs: int, warm_up: Collection[str] | None = None) -> dict[str, Figure]:
    """A warm-up round, then `runs` rounds, each running every scenario once. `warm_up`: the keys of
    the scenarios the warm-up round runs (default: all), when the others share their warm code."""
    samples: dict[str, list[Sample]] = {s.key: [] for s in scenarios}
    for n in range(runs + 1):
        for scenario in scenarios:
            if n == 0 and warm_up is not None and scenario.key not in warm_up:
                continue
            sample = scenario.run(f"{scenario.key}-{n}")
            say(f"{scenario.name}: {'warm-up' if n == 0 else f'run {n}/{runs}'}: {sample.seconds:.2f} s")
            if n:
                samples[scenario.key].append(sample)
    return {s.key: Figure(s.name, s.engine, samples[s.key]) for s in scenarios}

