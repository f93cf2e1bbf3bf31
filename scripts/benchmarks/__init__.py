"""The benchmarks behind `scripts/bench` (run from the repository root with `scripts` on the path).

  export.py   scripts/bench export: our export jobs beside an I/O floor and DuckDB (BENCHMARKS.md)
  api.py      scripts/bench api: the HTTP API's latency over a large job table

The export benchmark's pieces: settings.py (lake shape, fields, Spark settings),
lake.py (the generated lake), rounds.py (interleaved repetition), ours.py (our jobs),
floor.py (plain Spark I/O), duck.py (DuckDB), memory.py (driver peaks), runs.py (the
figures and scaling points), report.py (BENCHMARKS.md and its chart).
"""
