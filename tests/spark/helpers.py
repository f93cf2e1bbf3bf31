"""Builders for tiny hand-written fragments and plans."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from jobs.planner import ExportPlan, ProfileSource, SegmentSpec
from jobs.spec import merge_leaves, projection

FRAGMENT = (
    "identityMap map<string, array<struct<id: string, primary: boolean>>>, "
    "_ingestTime timestamp, "
    "segmentMembership map<string, map<string, struct<status: string, lastQualificationTime: timestamp>>>, "
    "person struct<name: struct<firstName: string, lastName: string>>, "
    "personalEmail struct<address: string>"
)


def schema_of(spark) -> dict:
    """FRAGMENT as the Delta JSON schema a plan is built from."""
    return spark.createDataFrame([], FRAGMENT).schema.jsonValue()


def ts(day: int, hour: int = 0, second: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, 0, second, tzinfo=UTC)


def ids(key: str, **others: str) -> dict:
    """identityMap with ECID `key` as primary and other namespaces as secondary ids."""
    identity_map = {"ECID": [{"id": key, "primary": True}]}
    for namespace, value in others.items():
        identity_map[namespace] = [{"id": value, "primary": False}]
    return identity_map


def member(status: str, qualified: datetime | None = None) -> dict:
    return {"status": status, "lastQualificationTime": qualified}


def make_plan(
    schema_json: dict,
    fields: list[tuple[str, ...]] | None = None,
    segments: Sequence[SegmentSpec] = (),
    merge: str = "timestampOrdered",
    sources: tuple[ProfileSource, ...] = (ProfileSource("a", "unused", 0),),
    per_segment: bool = False,
    counted: Sequence[SegmentSpec] = (),
    **window,
) -> ExportPlan:
    nodes = projection(schema_json, fields)
    batch_ids = tuple(dict.fromkeys(s.batch_id for s in segments)) or ("combined",)
    return ExportPlan(
        job_id=1,
        sources=sources,
        merge=merge,
        profile_schema=schema_json,
        projection=nodes,
        leaves=tuple(merge_leaves(nodes)),
        segments=tuple(segments),
        counted_segments=tuple(segments) if per_segment else tuple(counted),
        qualified_from=window.get("qualified_from"),
        qualified_to=window.get("qualified_to"),
        from_ingest=window.get("from_ingest"),
        events=None,
        empty_profiles=False,
        destination_path="unused",
        per_segment=per_segment,
        batch_ids=batch_ids,
        txn_app_id="test",
        user_metadata="{}",
    )
