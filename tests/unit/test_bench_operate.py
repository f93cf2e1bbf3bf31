"""scripts/bench operate end to end at a tiny size (no Spark): every figure is measured and reported."""

from __future__ import annotations

import re

from benchmarks.operate import SECRET, SECRET_ENV, main


def test_the_operate_benchmark_reports_every_figure(capsys, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)  # main sets it for the process: undone after the test
    assert main(["--jobs", "50", "--requests", "5", "--runs", "2", "--deliveries", "6"]) == 0
    report = capsys.readouterr().out
    for heading in ("## Scrape: 50 jobs (45 finished", "## A job's final write", "## Delivery throughput",
                    "## Console"):
        assert heading in report
    assert re.search(r"steady scrape / list, medians: \*\*\d+\.\d\d\*\*", report)
    assert re.search(r"with 2 endpoints / without: \*\*\d+\.\d\d\*\*; .* beside the same deliverer: \*\*\d", report)
    assert report.count("| sending to a hanging receiver |") == 3
    assert report.count("the receiver got 6 requests; the log: {'DELIVERED': 6}") == 2  # none lost at this size
    assert re.search(r"\| `/console/console\.js` \| [\d,]+ \|", report)
