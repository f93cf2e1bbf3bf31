"""The benchmarks behind `scripts/bench` (run from the repository root with `scripts` on the path).

  export.py   scripts/bench export: our export jobs beside an I/O floor, a hand-written
              PySpark job and DuckDB (docs/benchmarks-report.md)
  tuning.py   scripts/bench settings: each performance setting against Spark's defaults, on a cluster
  scaling.py  scripts/bench scaling: task metrics per lake size on a cluster, and a 100M-profile plan
  api.py      scripts/bench api: the HTTP API's latency over a large job table, and its disk use
  operate.py  scripts/bench operate: GET /metrics, webhooks' cost to a job and their delivery, the console
  like.py     scripts/bench like: PQL's like against Spark's own, on ordinary and hostile patterns

The export benchmark's pieces: settings.py (lake shape, fields, Spark settings),
lake.py (the generated lake), rounds.py (interleaved repetition), ours.py (our jobs),
floor.py (plain Spark I/O), handwritten.py (the export written by hand in PySpark),
duck.py (DuckDB), memory.py (driver peaks), runs.py (the figures and scaling points),
report.py (docs/benchmarks-report.md and its chart). On a cluster:
standalone.py (a standalone master and workers on 127.0.0.1, also used by tests/cluster),
clustered.py (a session on it as under spark-submit), tasks.py (task metrics from the event log).
"""
