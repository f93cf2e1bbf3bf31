"""DuckDB: the same export as one SQL statement over the tables' Parquet files."""

from __future__ import annotations

import time
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder

from benchmarks.lake import Lake
from benchmarks.rounds import Sample
from benchmarks.settings import BASELINE_LEAVES, STATUSES
from jobs.control import literal
from sample_lake import segment_id

# The projection rebuilt from the merged BASELINE_LEAVES: a hand-written twin of jobs.projection for
# FIELDS (a struct whose fields are all null is null).
DUCKDB_PROJECTION = """
    list_transform(_identities, lambda x: CASE WHEN x.id IS NOT NULL THEN {'id': x.id} END) AS identities,
    CASE WHEN _email IS NOT NULL THEN {'address': _email} END AS personalEmail,
    CASE WHEN _firstName IS NOT NULL THEN {'name': {'firstName': _firstName}} END AS person,
    CASE WHEN _tier IS NOT NULL THEN {'tier': _tier} END AS loyalty"""
PRIMARIES = """flatten(list_transform(map_entries(identityMap), lambda e: list_transform(
    list_filter(e.value, lambda i: coalesce(i."primary", false)), lambda i: {'ns': e.key, 'id': i.id})))"""
IDENTITIES = """flatten(list_transform(map_entries(identityMap), lambda e: list_transform(
    e.value, lambda i: {'ns': e.key, 'id': i.id})))"""
# The union of the profile's identities, grouped by namespace; only the key is primary.
IDENTITY_MAP = """map_from_entries(list_transform(list_distinct(list_transform(_ids, lambda e: e.ns)),
    lambda n: {'key': n, 'value': list_transform(list_filter(_ids, lambda e: e.ns = n),
        lambda e: {'id': e.id, 'primary': e.ns = _keyNs AND e.id = _keyId})}))"""
# The primary identity of an exported row, as 'ns:id', for comparing key sets.
ROW_KEY = """flatten(list_transform(map_entries(identityMap), lambda e: list_transform(
    list_filter(e.value, lambda i: i."primary"), lambda i: e.key || ':' || i.id)))[1]"""


def sql_list(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(literal(v) for v in values) + "]"


def duckdb_export_sql(files: list[str], refs: list[tuple[str, str]], batch_id: str) -> str:
    """Our combined-batch export as one statement: key = the one primary identity, latest
    non-null value per leaf and latest membership per segment by _ingestTime, status filter,
    projection."""
    members = {f"_m{i}": f"segmentMembership[{literal(ns)}][{literal(seg)}]" for i, (ns, seg) in enumerate(refs)}
    picked = {**BASELINE_LEAVES, **members}
    keyed = ", ".join(f"{expr} AS {name}" for name, expr in picked.items())
    latest = ",\n    ".join(f"arg_max({n}, _ingestTime) FILTER (WHERE {n} IS NOT NULL) AS {n}" for n in picked)
    statuses = ", ".join(literal(s) for s in STATUSES)
    matched = " OR ".join(f"coalesce({n}.status IN ({statuses}), false)" for n in members)
    return f"""
WITH fragments AS (
  SELECT *, {PRIMARIES} AS _primaries
  FROM read_parquet({sql_list(files)}, union_by_name = true)
), keyed AS (
  SELECT _primaries[1].ns AS _keyNs, _primaries[1].id AS _keyId, _ingestTime, {IDENTITIES} AS _ids, {keyed}
  FROM fragments WHERE len(_primaries) = 1
), merged AS (
  SELECT _keyNs, _keyId, list_sort(list_distinct(flatten(list(_ids)))) AS _ids,
    {latest}
  FROM keyed GROUP BY _keyNs, _keyId
)
SELECT {literal(batch_id)} AS _batchId, {IDENTITY_MAP} AS identityMap,
  {membership_map(refs)} AS segmentMembership, {DUCKDB_PROJECTION}
FROM merged WHERE {matched}"""


def membership_map(refs: list[tuple[str, str]]) -> str:
    """{ns: {segment: latest membership}} of the requested segments the profile has."""
    by_namespace: dict[str, list[str]] = {}
    for i, (ns, seg) in enumerate(refs):
        by_namespace.setdefault(ns, []).append(f"{{'key': {literal(seg)}, 'value': _m{i}}}")
    entries = ", ".join(
        f"{{'key': {literal(ns)}, 'value': map_from_entries(list_filter([{', '.join(items)}], "
        "lambda e: e.value IS NOT NULL))}"
        for ns, items in by_namespace.items()
    )
    return f"map_from_entries(list_filter([{entries}], lambda e: cardinality(e.value) > 0))"


def run_duckdb(con: duckdb.DuckDBPyConnection, lake: Lake, segments: int, name: str) -> Sample:
    """List the tables' files (from their Delta logs) and export to one Parquet file."""
    out = literal(str(lake.root / "runs" / f"{name}.parquet"))
    started = time.perf_counter()
    files = [uri for path in lake.profile_paths for uri in DeltaTable(path).file_uris()]
    refs = [("ups", segment_id(i)) for i in range(segments)]
    # DuckDB keeps a statement's result open until it is fetched, and then refuses other work.
    con.execute(f"COPY ({duckdb_export_sql(files, refs, 'duckdb')}) TO {out} (FORMAT parquet)").fetchall()
    seconds = time.perf_counter() - started
    rows = con.execute(f"SELECT count(*) FROM read_parquet({out})").fetchall()[0][0]
    return Sample(seconds, rows, str(lake.root / "runs" / f"{name}.parquet"))


@dataclass(frozen=True)
class KeyCheck:
    name: str  # our export's figure
    baseline: str  # the other figure
    ours: int
    other: int
    only_ours: int
    only_other: int

    @property
    def equal(self) -> bool:
        return self.only_ours == 0 and self.only_other == 0


def compare_keys(con: duckdb.DuckDBPyConnection, name: str, destination: str, baseline: str, output: str) -> KeyCheck:
    """Our destination and a baseline's output (DuckDB's Parquet file or a Delta table): the same profile keys?
    Delta tables are read with deltalake."""
    def relation(path: str, view: str) -> str:
        if path.endswith(".parquet"):
            return f"read_parquet({literal(path)})"
        query = QueryBuilder().register("t", DeltaTable(path)).execute('SELECT "identityMap" FROM t')
        con.register(view, pa.table(query))
        return view

    try:
        counts = con.execute(f"""
            WITH o AS (SELECT DISTINCT {ROW_KEY} AS k FROM {relation(destination, "ours_rows")}),
                 d AS (SELECT DISTINCT {ROW_KEY} AS k FROM {relation(output, "other_rows")})
            SELECT count(o.k), count(d.k), count(*) FILTER (WHERE d.k IS NULL), count(*) FILTER (WHERE o.k IS NULL)
            FROM o FULL OUTER JOIN d ON o.k = d.k""").fetchall()[0]
    finally:
        for view in ("ours_rows", "other_rows"):
            con.unregister(view)
    return KeyCheck(name, baseline, *counts)
