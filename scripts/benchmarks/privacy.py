"""Erasure (scripts/bench privacy): people erased from a generated lake and two destinations an
export already wrote, through privacy requests as a user sends them, run by the runner.

One lake of --profiles (default 1M, with events); two 20-segment exports to two destinations;
then one privacy request with --people users (each one person's primary identity, action
delete), run by run_privacy_jobs in the benchmark's session. Prints the time, the time per
person, and the rows deleted per dataset (from the receipts), and checks with delta-rs that no
erased identity is left in any dataset.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from benchmarks.lake import make_lake
from benchmarks.memory import PeakMemory
from benchmarks.ours import job_body, run_ours
from benchmarks.rounds import parse_size, say
from benchmarks.settings import MASTER, SEGMENTS, SPARK_CONF
from jobs.control import PrivacyStore, create_privacy_jobs, run_privacy_jobs
from jobs.engine import build_session
from jobs.spec import PrivacyStatus, load_config


def people(path: str, count: int) -> list[str]:
    """`count` profile keys (ECIDs) of the first profile dataset, spread over it."""
    keys = DeltaTable(path).to_pyarrow_table(columns=["identityMap"]).column("identityMap").to_pylist()
    ecids = sorted({i["id"] for entry in keys for ns, items in (entry or []) if ns == "ECID" for i in items
                    if i["primary"]})
    step = max(len(ecids) // count, 1)
    return ecids[::step][:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench privacy", description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=parse_size, default=1_000_000)
    parser.add_argument("--people", type=int, default=1000)
    args = parser.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = build_session(MASTER, "export-jobs-bench-privacy", SPARK_CONF)
    spark.sparkContext.setLogLevel("ERROR")
    with tempfile.TemporaryDirectory(prefix="export-jobs-bench-privacy-") as tmp:
        lake = make_lake(spark, Path(tmp) / "lake", args.profiles, events=True)
        memory = PeakMemory(spark)
        destinations = [run_ours(spark, lake, job_body(SEGMENTS), memory, f"audience-{n}").output for n in (1, 2)]
        config = lake.deployment("privacy")
        # The erasure runs over the lake's datasets and both exports' destinations.
        extra = "".join(f'\n[[destinationDatasets]]\nid = "audience-{n}"\npath = "{path}"\n'
                        f'schemaName = "_xdm.context.profile"\n' for n, path in enumerate(destinations, 1))
        conf = lake.config_file("privacy")
        conf.write_text(conf.read_text() + extra)
        config = load_config(conf)
        chosen = people(lake.profile_paths[0], args.people)
        store = PrivacyStore(config.privacy_table_path)
        create_privacy_jobs(store, {
            "companyContexts": [{"namespace": "imsOrgID", "value": config.default_org}], "regulation": "gdpr",
            "users": [{"key": f"person-{n}", "action": ["delete"], "userIDs": [{"namespace": "ECID", "value": ecid}]}
                      for n, ecid in enumerate(chosen)]}, config.default_org, config.default_sandbox)
        say(f"erasing {len(chosen)} people")
        started = time.perf_counter()
        done = run_privacy_jobs(store, config, lambda: spark, "bench")
        seconds = time.perf_counter() - started
        say(f"erased in {seconds:.1f} s")
        failed = [j for j in done if j.status is not PrivacyStatus.COMPLETE]
        rows: Counter[str] = Counter()
        for job in done:
            for receipt in job.receipts:
                rows[receipt.dataset_id] += receipt.rows_affected
        erased, left = pa.array(chosen), 0
        for dataset in [*config.profile_datasets, *config.event_datasets, *config.destination_datasets]:
            path = config.resolve(dataset.path)
            if DeltaTable.is_deltatable(path):
                maps = DeltaTable(path).to_pyarrow_table(columns=["identityMap"]).column("identityMap")
                # One array, not the table's chunks: a sliced chunk's `items` are its whole buffer's.
                # A map's items are its values: lists of identity structs.
                ids = pa.concat_arrays(maps.chunks).items.flatten().field("id")
                left += pc.sum(pc.is_in(ids, value_set=erased)).as_py() or 0
    spark.stop()
    print(f"erased {len(done) - len(failed)} of {len(chosen)} people in {seconds:.1f} s "
          f"({seconds / max(len(done), 1):.2f} s a person); failed: {len(failed)}; erased identities left: {left}")
    for dataset_id, count in sorted(rows.items()):
        print(f"  {dataset_id}: {count:,} rows")
    return 0 if not failed and left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
