"""The fault-injection run (scripts/faults) at a small size: runners killed with SIGKILL at random
moments and restarted lose no job, no record and no row, and duplicate nothing; the mirror destination
holds exactly the audience of the job that committed to it last, whatever MERGE a kill cut short."""

from __future__ import annotations

import pytest

from fault_injection import FaultRun, fault_run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_runners_killed_at_random_moments_lose_and_duplicate_nothing(lake, tmp_path):
    root, _ = lake
    run = FaultRun(jobs=6, kills=3, max_kills_per_job=2, lost_job_retries=4, lease_seconds=2.0,
                   timeout_seconds=900.0, mirror=True)
    report = fault_run(run, root, tmp_path)
    print({k: v for k, v in report.items() if k != "killLog"})

    assert report["problems"] == []
    assert report["succeeded"] == 6 and report["lost"] == 0 and report["duplicated"] == 0
    assert report["kills"] >= 2  # the jobs may all finish before the last planned kill lands
    assert report["runnerLostErrors"] >= report["kills"]  # each kill cost its job one retry
    assert report["rowsPerJob"] > 0
