"""Estimates (scripts/bench estimate): how long a preview and estimate take in a warm session, and
how far the estimate is from the exact count.

One lake of --profiles (default 1M, with events); for an attribute expression and one that counts
events, the exact count from the same evaluation over the whole lake (previewSampleKeys above the
lake's size), then --runs sampled estimates (previewSampleKeys default 100,000): their median time,
the estimate's relative error against the exact count, and whether the 95% interval holds it.
A warm-up estimate runs first, unmeasured, as a server's warm session would have.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.lake import make_lake
from benchmarks.rounds import parse_size, say
from benchmarks.settings import MASTER, SPARK_CONF
from jobs.control import PreviewStore, create_preview, run_previews
from jobs.engine import build_session
from jobs.spec import Config, Preview, PreviewState

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EXPRESSIONS = {
    "attributes": 'loyalty.tier = "gold"',
    "events": 'loyalty.tier = "gold" and xEvent[eventType = "commerce.purchases"].count() >= 2',
}


def estimated(config: Config, spark: SparkSession, expression: str, sample_keys: int) -> tuple[Preview, float]:
    config = config.model_copy(update={"preview_sample_keys": sample_keys})
    store = PreviewStore(config.preview_table_path)
    create_preview(store, config, {"predicateExpression": expression}, config.default_org, config.default_sandbox)
    started = time.perf_counter()
    [preview] = run_previews(store, config, lambda: spark)
    seconds = time.perf_counter() - started
    assert preview.state is PreviewState.RESULT_READY and preview.estimate is not None, preview.error
    return preview, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench estimate", description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=parse_size, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample-keys", type=parse_size, default=100_000)
    args = parser.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = build_session(MASTER, "export-jobs-bench-estimate", SPARK_CONF)
    spark.sparkContext.setLogLevel("ERROR")
    failed = False
    with tempfile.TemporaryDirectory(prefix="export-jobs-bench-estimate-") as tmp:
        lake = make_lake(spark, Path(tmp) / "lake", args.profiles, events=True)
        config = lake.deployment("estimate")
        estimated(config, spark, EXPRESSIONS["attributes"], args.sample_keys)  # warm-up
        print(f"estimates at {args.profiles:,} profiles, sample of about {args.sample_keys:,} keys, "
              f"{args.runs} runs (warm session):")
        for name, expression in EXPRESSIONS.items():
            exact, whole_s = estimated(config, spark, expression, 10 * args.profiles)
            assert exact.estimate is not None
            count = exact.estimate.estimated_size
            runs = [estimated(config, spark, expression, args.sample_keys) for _ in range(args.runs)]
            preview = runs[-1][0]
            assert preview.estimate is not None and preview.sampling is not None
            interval = preview.estimate.confidence_interval
            error = (preview.estimate.estimated_size - count) / count if count else 0.0
            held = interval.low <= count <= interval.high
            failed |= not held
            median = statistics.median(s for _, s in runs)
            print(f"  {name}: exact {count:,} in {whole_s:.1f} s (whole lake); estimate "
                  f"{preview.estimate.estimated_size:,} [{interval.low:,}, {interval.high:,}] from "
                  f"{preview.estimate.profiles_read_so_far:,} sampled profiles (fraction "
                  f"{preview.sampling.fraction:.4f}) in {median:.1f} s median "
                  f"({', '.join(f'{s:.1f}' for _, s in runs)}); "
                  f"relative error {error:+.2%}; interval holds the exact count: {'yes' if held else 'NO'}; "
                  f"estimate / whole lake time {median / whole_s:.2f}")
            say(f"{name} done")
    spark.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
