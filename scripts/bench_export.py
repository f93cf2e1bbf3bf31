"""Export throughput (scripts/bench export): our export jobs beside an I/O floor and DuckDB.

One generated lake (jobs.sample: every profile in profiles_0, about half of them again
in the later profiles_1, 20 segments, 0-3 memberships per fragment, 10 events per
profile) and one SparkSession (local[2]) for every Spark run. Each figure is the median
of --runs warm runs after one warm-up run; the runs go in rounds (one run of every figure
per round), so that a change in the machine's load touches every figure alike:

  ours         export jobs made with create_job and run with run_job, each run to a fresh
               destination; the figure is the record's profileExportTime
  per-segment  the 20-segment job with segmentPerBatch true
  I/O floor    plain Spark reading the same fragment tables and writing the same columns,
               with no merge and no filter
  DuckDB       the same export as one SQL statement over the tables' Parquet files, written
               to Parquet; its set of exported profile keys is checked against ours
  overhead     run_job's wall time minus profileExportTime: claim, plan, record writes

`--scaling SIZES` also runs our 1- and 20-segment exports at each size (lakes without
events) and records time per profile and the driver's peak memory. It writes
BENCHMARKS.md and a chart beside it, and prints the ratios against their targets last.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import reduce
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, QueryBuilder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from jobs.config import Config, load_config  # noqa: E402
from jobs.model import JobRecord, JobStatus, parse_field_list  # noqa: E402
from jobs.projection import project  # noqa: E402
from jobs.runner import run_job  # noqa: E402
from jobs.sample import LakeSpec, generate, sample_config, segment_id  # noqa: E402
from jobs.schema import projection  # noqa: E402
from jobs.service import create_job  # noqa: E402
from jobs.store import JobStore  # noqa: E402


PROFILE_DATASETS = 2  # sample_config's default: every profile in the first, about half again in the second
SEGMENTS = 20
EVENTS_PER_PROFILE = 10
MAX_MEMBERSHIPS = 3
FIELDS = "identities.id,personalEmail.address,person.name.firstName,loyalty.tier"
EVENT_FIELDS = "_id,timestamp,web.webPageDetails.URL"
STATUSES = ("realized", "existing")  # the default of a segment filter
DESTINATION_ID = "audience"  # sample_config's destination dataset
SCHEMA_NAME = "_xdm.context.profile"
MASTER = "local[2]"
DRIVER_MEMORY = "4g"
# 8 partitions keep both cores busy through skew without the per-task cost of Spark's 200.
SPARK_CONF = {"spark.sql.shuffle.partitions": "8", "spark.driver.memory": DRIVER_MEMORY}
# jobs.session settings that change the figures; the report says how the benchmark's session has them.
REPORTED_SETTINGS = (
    "spark.sql.codegen.wholeStage",
    "spark.sql.execution.useObjectHashAggregateExec",
    "spark.sql.adaptive.advisoryPartitionSizeInBytes",
)
DUCKDB_THREADS = 2  # the cores local[2] has
DEFAULT_SCALING = "250k,1M,4M"
TARGETS = {  # name -> the most it may be
    "ours / I/O floor, 1 segment": 1.5,
    "per-segment / combined, 20 segments": 1.3,
    "ours / DuckDB, 1 segment": 4.0,
    "ours / DuckDB, 20 segments": 4.0,
    "job overhead (s)": 1.0,
}


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


# ---------------------------------------------------------------- the lake and its deployments


@dataclass(frozen=True)
class Lake:
    root: Path
    spec: LakeSpec
    event_datasets: int
    generate_s: float

    @property
    def profile_paths(self) -> list[str]:
        return [str(self.root / "profiles" / f"profiles_{i}") for i in range(PROFILE_DATASETS)]

    @property
    def event_paths(self) -> list[str]:
        return [str(self.root / "events" / f"events_{i}") for i in range(self.event_datasets)]

    def deployment(self, name: str) -> Config:
        """A config over this lake with the shared job table and a destination of its own,
        so that no run appends to another run's table."""
        runs = self.root / "runs"
        runs.mkdir(exist_ok=True)
        conf = runs / f"{name}.toml"
        conf.write_text(sample_config(self.root, event_datasets=self.event_datasets,
                                      destination=str(runs / name)))
        return load_config(conf)


def make_lake(spark, root: Path, profiles: int, events: bool) -> Lake:
    spec = LakeSpec(profiles=profiles, segments=SEGMENTS, max_memberships=MAX_MEMBERSHIPS,
                    events_per_profile=EVENTS_PER_PROFILE if events else 0)
    root.mkdir(parents=True)
    conf = root / "lake.toml"
    event_datasets = 1 if events else 0
    conf.write_text(sample_config(root, event_datasets=event_datasets))
    say(f"generating a lake of {profiles:,} profiles{' with events' if events else ''} under {root}")
    started = time.perf_counter()
    generate(spark, load_config(conf), spec)
    return Lake(root, spec, event_datasets, time.perf_counter() - started)


def table_stats(path: str) -> tuple[int, int, int]:
    """(rows, files, bytes) of a Delta table, from its log."""
    actions = pa.table(DeltaTable(path).get_add_actions(flatten=True))
    return (pc.sum(actions["num_records"]).as_py() or 0, actions.num_rows,
            pc.sum(actions["size_bytes"]).as_py() or 0)


# ---------------------------------------------------------------- repetition


@dataclass(frozen=True)
class Sample:
    seconds: float
    rows: int  # rows written
    output: str  # the table or file written, for the key check
    overhead_s: float | None = None  # ours: run_job's wall time minus profileExportTime
    record_overhead_s: float | None = None  # ours: the record's totalTime minus profileExportTime


@dataclass(frozen=True)
class Scenario:
    key: str
    name: str
    engine: str  # "ours", "floor" or "duckdb": the chart's colour
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


def interleave(scenarios: list[Scenario], runs: int) -> dict[str, Figure]:
    """A warm-up round, then `runs` rounds, each running every scenario once."""
    samples: dict[str, list[Sample]] = {s.key: [] for s in scenarios}
    for n in range(runs + 1):
        for scenario in scenarios:
            sample = scenario.run(f"{scenario.key}-{n}")
            say(f"{scenario.name}: {'warm-up' if n == 0 else f'run {n}/{runs}'}: {sample.seconds:.2f} s")
            if n:
                samples[scenario.key].append(sample)
    return {s.key: Figure(s.name, s.engine, samples[s.key]) for s in scenarios}


# ---------------------------------------------------------------- ours


def job_body(segments: int, per_segment: bool = False, events: bool = False) -> dict:
    body = {
        "fields": FIELDS,
        "filter": {"segments": [{"segmentId": segment_id(i)} for i in range(segments)]},
        "destination": {"datasetId": DESTINATION_ID, "segmentPerBatch": per_segment},
        "schema": {"name": SCHEMA_NAME},
    }
    if events:
        body["additionalFields"] = {"eventList": {"fields": EVENT_FIELDS}}
    return body


def run_ours(spark, lake: Lake, body: dict, memory: PeakMemory, name: str) -> Sample:
    """One job, created and run as a user's would be; the figure is its profileExportTime."""
    config = lake.deployment(name)
    store = JobStore(config.job_table_path)
    record = create_job(store, config, body, config.default_org, config.default_sandbox)
    with memory:
        started = time.perf_counter()
        final = run_job(store, config, record.id, spark)
        wall = time.perf_counter() - started
    if final.status is not JobStatus.SUCCEEDED:
        raise RuntimeError(f"{name}: job {final.id} ended {final.status.value}: {final.errors}")
    export = _span_s(final, "profile_export_time")
    return Sample(export, _rows(final), config.resolve(config.destination(DESTINATION_ID).path),
                  wall - export, _span_s(final, "total_time") - export)


def _span_s(record: JobRecord, name: str) -> float:
    return getattr(record.metrics, name).total_time_in_ms / 1000


def _rows(record: JobRecord) -> int:
    """Rows written: one per profile, or one per profile and segment in per-segment jobs."""
    by_segment = record.metrics.exported_profile_by_segment_counter
    if by_segment is None:
        return record.metrics.total_exported_profile_counter
    return sum(n for segments in by_segment.values() for n in segments.values())


def ours(spark, lake: Lake, memory: PeakMemory, key: str, name: str, body: dict) -> Scenario:
    return Scenario(key, name, "ours", lambda run: run_ours(spark, lake, body, memory, run))


# ---------------------------------------------------------------- the I/O floor


def floor_frame(spark, path: str):
    """One fragment table's identityMap, segmentMembership and requested fields, as stored."""
    df = spark.read.format("delta").load(path)
    paths = [p for p in parse_field_list(FIELDS) if p[0] in df.columns]
    nodes = projection(df.schema.jsonValue(), paths)
    return df.select("identityMap", "segmentMembership", *[project(n, df[n.name]).alias(n.name) for n in nodes])


def run_floor(spark, lake: Lake, name: str) -> Sample:
    from pyspark.sql import functions as F

    destination = str(lake.root / "runs" / name)
    started = time.perf_counter()
    frames = [floor_frame(spark, path) for path in lake.profile_paths]
    rows = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
    rows.withColumn("_batchId", F.lit("floor")).write.format("delta").mode("append").save(destination)
    seconds = time.perf_counter() - started
    return Sample(seconds, table_stats(destination)[0], destination)


# ---------------------------------------------------------------- DuckDB

# The merged leaves of FIELDS and the projection rebuilt from them: a hand-written
# twin of jobs.projection for this one field list (a struct whose fields are all null is null).
DUCKDB_LEAVES = {
    "_identities": "identities",
    "_email": "personalEmail.address",
    "_firstName": "person.name.firstName",
    "_tier": "loyalty.tier",
}
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


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_list(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(sql_text(v) for v in values) + "]"


def duckdb_export_sql(files: list[str], refs: list[tuple[str, str]], batch_id: str) -> str:
    """Our combined-batch export as one statement: key = the one primary identity, latest
    non-null value per leaf and latest membership per segment by _ingestTime, status filter,
    projection."""
    members = {f"_m{i}": f"segmentMembership[{sql_text(ns)}][{sql_text(seg)}]" for i, (ns, seg) in enumerate(refs)}
    picked = {**DUCKDB_LEAVES, **members}
    keyed = ", ".join(f"{expr} AS {name}" for name, expr in picked.items())
    latest = ",\n    ".join(f"arg_max({n}, _ingestTime) FILTER (WHERE {n} IS NOT NULL) AS {n}" for n in picked)
    statuses = ", ".join(sql_text(s) for s in STATUSES)
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
SELECT {sql_text(batch_id)} AS _batchId, {IDENTITY_MAP} AS identityMap,
  {membership_map(refs)} AS segmentMembership, {DUCKDB_PROJECTION}
FROM merged WHERE {matched}"""


def membership_map(refs: list[tuple[str, str]]) -> str:
    """{ns: {segment: latest membership}} of the requested segments the profile has."""
    by_namespace: dict[str, list[str]] = {}
    for i, (ns, seg) in enumerate(refs):
        by_namespace.setdefault(ns, []).append(f"{{'key': {sql_text(seg)}, 'value': _m{i}}}")
    entries = ", ".join(
        f"{{'key': {sql_text(ns)}, 'value': map_from_entries(list_filter([{', '.join(items)}], "
        "lambda e: e.value IS NOT NULL))}"
        for ns, items in by_namespace.items()
    )
    return f"map_from_entries(list_filter([{entries}], lambda e: cardinality(e.value) > 0))"


def run_duckdb(con: duckdb.DuckDBPyConnection, lake: Lake, segments: int, name: str) -> Sample:
    """List the tables' files (from their Delta logs) and export to one Parquet file."""
    out = sql_text(str(lake.root / "runs" / f"{name}.parquet"))
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
    name: str
    ours: int
    duckdb: int
    only_ours: int
    only_duckdb: int

    @property
    def equal(self) -> bool:
        return self.only_ours == 0 and self.only_duckdb == 0


def compare_keys(con: duckdb.DuckDBPyConnection, name: str, destination: str, duck_output: str) -> KeyCheck:
    """Our destination (read with deltalake) and DuckDB's output: the same profile keys?"""
    ours = pa.table(QueryBuilder().register("t", DeltaTable(destination)).execute('SELECT "identityMap" FROM t'))
    con.register("ours_rows", ours)
    try:
        counts = con.execute(f"""
            WITH o AS (SELECT DISTINCT {ROW_KEY} AS k FROM ours_rows),
                 d AS (SELECT DISTINCT {ROW_KEY} AS k FROM read_parquet({sql_text(duck_output)}))
            SELECT count(o.k), count(d.k), count(*) FILTER (WHERE d.k IS NULL), count(*) FILTER (WHERE o.k IS NULL)
            FROM o FULL OUTER JOIN d ON o.k = d.k""").fetchall()[0]
    finally:
        con.unregister("ours_rows")
    return KeyCheck(name, *counts)


# ---------------------------------------------------------------- driver memory


def python_rss_mb() -> float:
    """This process's resident memory, from /proc (no psutil)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def jvm_heap_mb(spark) -> tuple[float, float]:
    """(used, max) heap of the driver JVM, which in local mode also runs the tasks."""
    runtime = spark.sparkContext._jvm.java.lang.Runtime.getRuntime()
    return (runtime.totalMemory() - runtime.freeMemory()) / 2**20, runtime.maxMemory() / 2**20


class PeakMemory:
    """Samples the driver's Python RSS and JVM heap in use while its blocks run (it may be
    entered again: only our job runs are sampled, not DuckDB in this same process); keeps the peaks."""

    INTERVAL_S = 0.2

    def __init__(self, spark):
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

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------- the runs


@dataclass(frozen=True)
class Comparison:
    figures: dict[str, Figure]  # by key: one, twenty, events, per_segment, floor, duck_one, duck_twenty
    keys: list[KeyCheck]
    memory: PeakMemory

    def ratio(self, a: str, b: str) -> float:
        return self.figures[a].median / self.figures[b].median

    @property
    def job_samples(self) -> list[Sample]:
        return [sample for f in self.figures.values() if f.engine == "ours" for sample in f.samples]

    @property
    def overhead_s(self) -> float:
        """Median over all our measured runs of run_job's wall time minus profileExportTime."""
        return statistics.median(s.overhead_s for s in self.job_samples)

    @property
    def record_overhead_s(self) -> float:
        """The same from the records alone: totalTime minus profileExportTime."""
        return statistics.median(s.record_overhead_s for s in self.job_samples)

    def targets(self) -> dict[str, float]:
        """The measured value of each of TARGETS."""
        return {
            "ours / I/O floor, 1 segment": self.ratio("one", "floor"),
            "per-segment / combined, 20 segments": self.ratio("per_segment", "twenty"),
            "ours / DuckDB, 1 segment": self.ratio("one", "duck_one"),
            "ours / DuckDB, 20 segments": self.ratio("twenty", "duck_twenty"),
            "job overhead (s)": self.overhead_s,
        }


def compare(spark, lake: Lake, runs: int) -> Comparison:
    memory = PeakMemory(spark)
    con = duckdb.connect()
    con.execute(f"SET threads = {DUCKDB_THREADS}")
    scenarios = [
        ours(spark, lake, memory, "one", "ours, 1 segment", job_body(1)),
        ours(spark, lake, memory, "twenty", f"ours, {SEGMENTS} segments", job_body(SEGMENTS)),
        ours(spark, lake, memory, "events", f"ours, {SEGMENTS} segments + events", job_body(SEGMENTS, events=True)),
        ours(spark, lake, memory, "per_segment", f"ours, {SEGMENTS} segments, segmentPerBatch",
             job_body(SEGMENTS, per_segment=True)),
        Scenario("floor", "I/O floor (Spark read + write)", "floor", lambda run: run_floor(spark, lake, run)),
        Scenario("duck_one", "DuckDB, 1 segment", "duckdb", lambda run: run_duckdb(con, lake, 1, run)),
        Scenario("duck_twenty", f"DuckDB, {SEGMENTS} segments", "duckdb",
                 lambda run: run_duckdb(con, lake, SEGMENTS, run)),
    ]
    figures = interleave(scenarios, runs)
    keys = [compare_keys(con, figures[ours_key].name, figures[ours_key].last.output, figures[duck_key].last.output)
            for ours_key, duck_key in (("one", "duck_one"), ("twenty", "duck_twenty"))]
    con.close()
    return Comparison(figures, keys, memory)


@dataclass(frozen=True)
class ScalePoint:
    profiles: int
    one: Figure
    twenty: Figure
    python_mb: float
    jvm_mb: float

    def per_profile_us(self, figure: Figure) -> float:
        return figure.median / self.profiles * 1e6


def scale_point(spark, base: Path, profiles: int, runs: int) -> ScalePoint:
    lake = make_lake(spark, base / f"scale-{profiles}", profiles, events=False)
    memory = PeakMemory(spark)
    figures = interleave([
        ours(spark, lake, memory, "one", f"scaling {profiles:,}: 1 segment", job_body(1)),
        ours(spark, lake, memory, "twenty", f"scaling {profiles:,}: {SEGMENTS} segments", job_body(SEGMENTS)),
    ], runs)
    return ScalePoint(profiles, figures["one"], figures["twenty"], memory.python_mb, memory.jvm_mb)


# ---------------------------------------------------------------- the report


def machine(spark) -> dict[str, str]:
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    heap_max = jvm_heap_mb(spark)[1]
    return {
        "cores": f"{os.cpu_count()} ({cpu}); Spark {MASTER}, DuckDB {DUCKDB_THREADS} threads",
        "memory": f"{int(meminfo['MemTotal'].split()[0]) / 2**20:.1f} GiB; Spark driver {DRIVER_MEMORY} "
                  f"(heap max {heap_max:,.0f} MiB); DuckDB default limit",
        # Other work on the machine slows every figure: say how busy it was.
        "load average (1, 5, 15 min) at the end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "versions": f"Python {platform.python_version()}, Java "
                    f"{spark.sparkContext._jvm.java.lang.System.getProperty('java.version')}, "
                    f"Spark {spark.version}, delta-spark {version('delta-spark')}, deltalake {version('deltalake')}, "
                    f"DuckDB {duckdb.__version__}, pyarrow {pa.__version__}",
        "Spark settings": ", ".join(f"`{k}={v}`" for k, v in {**SPARK_CONF, **{
            k: spark.conf.get(k) for k in REPORTED_SETTINGS}}.items()),
    }


def lake_lines(lake: Lake) -> list[str]:
    lines = []
    for path in lake.profile_paths + lake.event_paths:
        rows, files, size = table_stats(path)
        lines.append(f"| `{Path(path).name}` | {rows:,} | {files} | {size / 2**20:,.1f} MiB |")
    return lines


def report(args: argparse.Namespace, spark, lake: Lake, result: Comparison, scaling: list[ScalePoint],
           chart: Path) -> str:
    f = result.figures
    spec = lake.spec
    out = [
        "# Export benchmarks",
        "",
        f"`{' '.join(['scripts/bench export', *args.argv])}`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"Each figure is the median of {plural(args.runs, 'warm run')} after a warm-up run; the runs go in rounds "
        "(every figure once per round), so that a change in the machine's load touches every figure alike. "
        "Regenerate with the same command; see the README's Benchmarks section for what each figure measures.",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine(spark).items()],
        "",
        f"## Lake: {spec.profiles:,} profiles",
        "",
        f"Generated by `jobs.sample` in {lake.generate_s:.0f} s: every profile in `profiles_0`, about half of them "
        f"again in the later `profiles_1`, {spec.segments} segments, 0–{spec.max_memberships} memberships per "
        f"fragment, {spec.events_per_profile} events per profile. Fields exported: `{FIELDS}` "
        f"(+ `identityMap`, `segmentMembership`); events: `{EVENT_FIELDS}`.",
        "",
        "| table | rows | files | size |",
        "|---|---:|---:|---:|",
        *lake_lines(lake),
        "",
        "## Times",
        "",
        "| figure | median s | runs (s) | × I/O floor | rows written |",
        "|---|---:|---|---:|---:|",
    ]
    for figure in f.values():
        runs = ", ".join(f"{s:.2f}" for s in figure.seconds)
        out.append(f"| {figure.name} | {figure.median:.2f} | {runs} | "
                   f"{figure.median / f['floor'].median:.2f} | {figure.last.rows:,} |")
    out += [
        "",
        "Ours is the job record's `profileExportTime` (probe, read, merge, filter, project, and the Delta write, "
        "which also counts the exported rows). The I/O floor writes every fragment (no merge, no filter), so it "
        "writes more rows than the exports. DuckDB writes one Parquet file, with no Delta commit.",
        "",
        "## Targets",
        "",
        "| target | measured | at most | met |",
        "|---|---:|---:|---|",
        *[f"| {name} | {value:.2f} | {TARGETS[name]:.2f} | {'yes' if value <= TARGETS[name] else '**no**'} |"
          for name, value in result.targets().items()],
        "",
        f"Job overhead over all {len(result.job_samples)} measured job runs: median {result.overhead_s:.2f} s from the "
        f"`run_job` call to the SUCCEEDED record, minus `profileExportTime`; from the records alone (`totalTime` − "
        f"`profileExportTime`) {result.record_overhead_s:.2f} s.",
        "",
        "## Same profiles as DuckDB",
        "",
        "| export | our keys | DuckDB keys | only ours | only DuckDB | equal |",
        "|---|---:|---:|---:|---:|---|",
        *[f"| {k.name} | {k.ours:,} | {k.duckdb:,} | {k.only_ours:,} | {k.only_duckdb:,} | "
          f"{'yes' if k.equal else '**no**'} |" for k in result.keys],
        "",
        f"Driver peaks during our job runs: Python RSS {result.memory.python_mb:,.0f} MiB, "
        f"JVM heap in use {result.memory.jvm_mb:,.0f} MiB (total − free, so garbage not yet collected counts).",
    ]
    if scaling:
        out += [
            "",
            "## Scaling",
            "",
            f"Our exports on lakes of each size without events ({plural(args.runs, 'warm run')} each); "
            "memory: the driver's peaks while they ran.",
            "",
            "| profiles | 1 segment s | µs / profile | 20 segments s | µs / profile | Python RSS MiB | JVM heap MiB |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            *[f"| {p.profiles:,} | {p.one.median:.2f} | {p.per_profile_us(p.one):.1f} | {p.twenty.median:.2f} | "
              f"{p.per_profile_us(p.twenty):.1f} | {p.python_mb:,.0f} | {p.jvm_mb:,.0f} |" for p in scaling],
        ]
    out += ["", f"![median seconds per figure]({chart.name})", ""]
    return "\n".join(out)


def draw(result: Comparison, scaling: list[ScalePoint], profiles: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    from matplotlib import pyplot as plt

    colours = {"ours": "tab:blue", "floor": "tab:gray", "duckdb": "tab:orange"}
    panels = 2 if scaling else 1
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 4.5), squeeze=False)
    bars = axes[0][0]
    figures = list(result.figures.values())[::-1]
    bars.barh([f.name for f in figures], [f.median for f in figures], color=[colours[f.engine] for f in figures])
    for y, f in enumerate(figures):
        bars.text(f.median, y, f" {f.median:.1f}", va="center", fontsize=8)
    bars.set_xlabel("median seconds (lower is better)")
    bars.set_title(f"Export of {profiles:,} profiles, 2 cores")
    if scaling:
        line = axes[0][1]
        sizes = [p.profiles for p in scaling]
        line.plot(sizes, [p.per_profile_us(p.one) for p in scaling], "o-", label="1 segment")
        line.plot(sizes, [p.per_profile_us(p.twenty) for p in scaling], "s-", label=f"{SEGMENTS} segments")
        line.set_xscale("log")
        line.set_xticks(sizes, [f"{s:,}" for s in sizes])
        line.minorticks_off()
        line.set_xlabel("profiles")
        line.set_ylabel("µs per profile")
        line.set_ylim(bottom=0)
        line.set_title("Scaling: our export")
        line.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ratio_lines(result: Comparison) -> list[str]:
    lines = [f"{name:<38}{value:>7.2f}  (at most {TARGETS[name]:.2f}: {'met' if value <= TARGETS[name] else 'NOT met'})"
             for name, value in result.targets().items()]
    lines += [f"{'keys equal to DuckDB, ' + k.name:<38}{'yes' if k.equal else 'NO':>7}" for k in result.keys]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench export", description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=parse_size, default=1_000_000,
                        help="profiles in the lake, e.g. 20000, 250k, 1M (default: 1M)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per figure (default: %(default)s)")
    parser.add_argument("--scaling", type=parse_sizes, nargs="?", const=parse_sizes(DEFAULT_SCALING),
                        metavar="SIZES", help=f"also time our export at these sizes (default: {DEFAULT_SCALING})")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "BENCHMARKS.md",
                        help="the report; the chart is written beside it as .png (default: BENCHMARKS.md)")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from jobs.session import build_session

    spark = build_session(MASTER, "export-jobs-bench", SPARK_CONF)
    spark.sparkContext.setLogLevel("ERROR")
    with tempfile.TemporaryDirectory(prefix="export-jobs-bench-") as tmp:
        lake = make_lake(spark, Path(tmp) / "lake", args.profiles, events=True)
        result = compare(spark, lake, args.runs)
        scaling = [scale_point(spark, Path(tmp), size, args.runs) for size in args.scaling or ()]
        chart = args.out.with_suffix(".png")
        draw(result, scaling, args.profiles, chart)
        args.out.write_text(report(args, spark, lake, result, scaling, chart))
    spark.stop()
    say(f"wrote {args.out} and {chart}")
    print("\n".join(ratio_lines(result)))
    return 0 if all(k.equal for k in result.keys) else 1


if __name__ == "__main__":
    sys.exit(main())
