"""The identity-stitching figures: one export under identityGraph none and under pdg, side by side, on a
lake where LINKED_SHARE of the people have their 2-4 identities spread over their fragments and some
events carry two identities."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from benchmarks.lake import Lake, make_lake
from benchmarks.memory import PeakMemory
from benchmarks.ours import job_body, ours
from benchmarks.rounds import Figure, interleave
from benchmarks.settings import (
    LINKED_EVENTS,
    LINKED_EVENTS_PER_PROFILE,
    LINKED_FRAGMENTS_PER_PROFILE,
    LINKED_SHARE,
    MAX_MEMBERSHIPS,
    SEGMENTS,
)
from sample_lake import LakeSpec

POLICIES = {"none": "timestampOrdered-none-mp", "pdg": "timestampOrdered-pdg-mp"}


@dataclass(frozen=True)
class StitchPoint:
    profiles: int
    none: Figure
    pdg: Figure

    @property
    def ratio(self) -> float:
        return self.pdg.median / self.none.median

    @property
    def rounds(self) -> int | None:
        return self.pdg.last.identity_graph_rounds

    def per_profile_us(self, figure: Figure) -> float:
        return figure.median / self.profiles * 1e6


def linked_lake(spark: SparkSession, root: Path, profiles: int) -> Lake:
    spec = LakeSpec(profiles=profiles, segments=SEGMENTS, max_memberships=MAX_MEMBERSHIPS,
                    fragments_per_profile=LINKED_FRAGMENTS_PER_PROFILE, events_per_profile=LINKED_EVENTS_PER_PROFILE,
                    linked_share=LINKED_SHARE, linked_events=LINKED_EVENTS)
    return make_lake(spark, root, profiles, events=True, spec=spec)


def stitch_point(spark: SparkSession, base: Path, profiles: int, runs: int) -> StitchPoint:
    lake = linked_lake(spark, base / f"linked-{profiles}", profiles)
    memory = PeakMemory(spark)
    figures = interleave([
        ours(spark, lake, memory, graph, f"linked lake {profiles:,}: {SEGMENTS} segments, identityGraph {graph}",
             {**job_body(SEGMENTS), "mergePolicy": {"id": policy, "version": 1}})
        for graph, policy in POLICIES.items()
    ], runs)
    return StitchPoint(profiles, figures["none"], figures["pdg"])
