"""A plain-Python reference of the export, to check the Spark engine on tiny lakes.

Deliberately naive (row by row, no Spark): it reads the Delta tables with the
deltalake package and applies the merge and filter rules of docs/reference/job-definition.md literally.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder


def read_rows(path: str, where: str = "") -> list[dict]:
    sql = "SELECT * FROM t" + (f" WHERE {where}" if where else "")
    return pa.table(QueryBuilder().register("t", DeltaTable(path)).execute(sql)).to_pylist()


def _key(identity_map):
    primaries = [(ns, i["id"]) for ns, items in (identity_map or []) for i in items if i["primary"]]
    return primaries[0] if len(primaries) == 1 else None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def expected_members(fragment_paths: list[str], segments: list[tuple[str, str, set[str]]],
                     start=None, end=None) -> set[tuple[str, str]]:
    """Profile keys that qualify for at least one (namespace, segment, statuses)."""
    latest: dict[tuple, dict[tuple, tuple]] = {}
    for path in fragment_paths:
        for row in read_rows(path):
            key = _key(row["identityMap"])
            if key is None:
                continue
            memberships = latest.setdefault(key, {})
            ingest = _utc(row["_ingestTime"])
            for ns, inner in row.get("segmentMembership") or []:
                for segment, value in inner or []:
                    if value is None:
                        continue
                    current = memberships.get((ns, segment))
                    if current is None or current[0] < ingest:
                        memberships[(ns, segment)] = (ingest, value)
    members = set()
    for key, memberships in latest.items():
        for ns, segment, statuses in segments:
            found = memberships.get((ns, segment))
            if found is None or found[1]["status"] not in statuses:
                continue
            qualified = _utc(found[1]["lastQualificationTime"])
            if start and (qualified is None or qualified < start):
                continue
            if end and (qualified is None or qualified > end):
                continue
            members.add(key)
    return members


def latest_values(fragment_paths: list[str], column: str, field: str) -> dict[tuple[str, str], object]:
    """Per profile key, the latest non-null `column.field` of its fragments (timestampOrdered)."""
    latest: dict[tuple[str, str], tuple[datetime, object]] = {}
    for path in fragment_paths:
        for row in read_rows(path):
            key, value = _key(row["identityMap"]), (row.get(column) or {}).get(field)
            if key is None or value is None:
                continue
            ingest = _utc(row["_ingestTime"])
            assert ingest is not None, f"a fragment of {path} has no _ingestTime"
            if key not in latest or latest[key][0] < ingest:
                latest[key] = (ingest, value)
    return {key: value for key, (_, value) in latest.items()}


def event_counts(event_paths: list[str], meets) -> dict[tuple[str, str], int]:
    """Per profile key, how many of its events meet `meets(row)`."""
    counts: dict[tuple[str, str], int] = {}
    for path in event_paths:
        for row in read_rows(path):
            key = _key(row["identityMap"])
            if key is not None and meets(row):
                counts[key] = counts.get(key, 0) + 1
    return counts


def components(paths: list[str]) -> dict[tuple[str, str], tuple[str, str]]:
    """identityGraph pdg by union-find: every identity of the records at `paths` → its component's
    smallest identity."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for path in paths:
        for row in read_rows(path):
            ids = [(ns, i["id"]) for ns, items in (row["identityMap"] or []) for i in items]
            for other in ids[1:]:
                a, b = find(ids[0]), find(other)
                parent[max(a, b)] = min(a, b)
    return {x: find(x) for x in list(parent)}


def stitched_members(fragment_paths: list[str], link_paths: list[str], segments: list[tuple[str, str, set[str]]],
                     max_identities: int) -> set[tuple[str, str]]:
    """Component keys that qualify for a segment: memberships merged by _ingestTime over the
    component's fragments; components over the cap left out."""
    key_of = components(link_paths)
    sizes: dict[tuple[str, str], int] = {}
    for key in key_of.values():
        sizes[key] = sizes.get(key, 0) + 1
    latest: dict[tuple, dict[tuple, tuple]] = {}
    for path in fragment_paths:
        for row in read_rows(path):
            ids = [(ns, i["id"]) for ns, items in (row["identityMap"] or []) for i in items]
            if not ids:
                continue
            key = key_of.get(ids[0], ids[0])
            if sizes.get(key, 1) > max_identities:
                continue
            memberships = latest.setdefault(key, {})
            ingest = _utc(row["_ingestTime"])
            for ns, inner in row.get("segmentMembership") or []:
                for segment, value in inner or []:
                    current = memberships.get((ns, segment))
                    if value is not None and (current is None or current[0] < ingest):
                        memberships[(ns, segment)] = (ingest, value)
    return {key for key, memberships in latest.items()
            if any((m := memberships.get((ns, s))) and m[1]["status"] in statuses for ns, s, statuses in segments)}


def holding(path: str, identities: set[tuple[str, str]]) -> list[dict]:
    """The table's rows whose identityMap holds one of the (lowered namespace, id) identities."""
    return [r for r in read_rows(path)
            if {(ns.lower(), i["id"]) for ns, items in r["identityMap"] or [] for i in items} & identities]


def erasure_commits(path: str) -> list[dict]:
    """The userMetadata of the table's erasure commits (privacy batches)."""
    return [json.loads(c["userMetadata"]) for c in DeltaTable(path).history()
            if "privacyBatchId" in (c.get("userMetadata") or "")]


# Gold members who bought in the first half of Q1 2024: an attribute and an event condition.
GOLD_BUYERS = ('loyalty.tier = "gold" and xEvent[eventType = "commerce.purchases" and '
               "timestamp occurs between date(2024, 1, 1) and date(2024, 2, 15)].count() >= 1")


def gold_buyers(config) -> set[tuple[str, str]]:
    """The profile keys GOLD_BUYERS holds for in a deployment's lake (its segmentation dataset aside),
    computed row by row."""
    tiers = latest_values([config.resolve(d.path) for d in config.profile_datasets
                           if d.id != config.segmentation_dataset], "loyalty", "tier")
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 16, tzinfo=UTC)
    counts = event_counts([config.resolve(d.path) for d in config.event_datasets],
                          lambda e: e["eventType"] == "commerce.purchases"
                          and start <= e["timestamp"].replace(tzinfo=UTC) < end)
    return {k for k, tier in tiers.items() if tier == "gold" and counts.get(k, 0) >= 1}
