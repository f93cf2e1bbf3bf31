"""`--output table`: jobs, segment definitions and schedules as a person reads them on a terminal.

The CLI prints JSON when its output is piped (scripts read that) and this when it is a terminal,
unless `--output` says otherwise. Everything here reads the same dicts the JSON output prints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

Row = dict[str, Any]


def _time(ms: int | None) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(span: Row | None) -> str:
    total = (span or {}).get("totalTimeInMs")
    return "" if total is None else f"{total / 1000:.1f}s"


def grid(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns, as wide as their widest cell."""
    cells = [[str(c) for c in headers], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def _job_row(job: Row) -> list[object]:
    metrics = job.get("metrics", {})
    return [job["id"], job["status"], _time(job.get("creationTime")), job["destination"]["datasetId"],
            metrics.get("totalExportedProfileCounter", ""), _seconds(metrics.get("totalTime")),
            len(job.get("errors", []))]


def jobs_table(page: Row) -> str:
    rows = [_job_row(j) for j in page["records"]]
    text = grid(["ID", "STATUS", "CREATED (UTC)", "DESTINATION", "EXPORTED", "TIME", "ERRORS"], rows)
    return text + _next(page)


def job_table(job: Row) -> str:
    metrics = job.get("metrics", {})
    lines = [
        ("job", job["id"]), ("status", job["status"]), ("created", _time(job.get("creationTime"))),
        ("destination", f"{job['destination']['datasetId']} (batches: {', '.join(_batches(job)) or 'none yet'})"
         if "destination" in job else "none: a segment job (memberships written back)"),
        ("merge policy", f"{job['mergePolicy']['id']} v{job['mergePolicy']['version']}"),
        ("segments", ", ".join(s["segmentId"] for s in (job.get("filter") or {}).get("segments") or []) or "all"),
        ("exported profiles", metrics.get("totalExportedProfileCounter", "")),
        ("by namespace", ", ".join(f"{ns} {n}" for ns, n in (metrics.get("exportedProfileByNamespaceCounter")
                                                             or {}).items())),
        ("rejected records", metrics.get("rejectedRecordCounter", "")),
        ("total time", _seconds(metrics.get("totalTime"))),
    ]
    text = grid(["", ""], [(f"{k}:", v) for k, v in lines]).split("\n", 1)[1]
    for error in job.get("errors", []):
        text += f"\nerror {error['code']}: {error['msg']}"
    return text


def _batches(job: Row) -> list[str]:
    destination = job["destination"]
    if destination.get("batches"):
        return [b["batchId"] for b in destination["batches"]]
    return [destination["batchId"]] if destination.get("batchId") else []


def segments_table(page: Row) -> str:
    rows = [[s["id"], s["name"], s.get("mergePolicyId", ""), _time(s.get("updateTime")),
             _short(s["expression"]["value"])] for s in page["segments"]]
    return grid(["ID", "NAME", "MERGE POLICY", "UPDATED (UTC)", "EXPRESSION"], rows) + _next(page)


def segment_table(segment: Row) -> str:
    return segments_table({"segments": [segment]}) + f"\n\n{segment['expression']['value']}"


def schedules_table(page: Row) -> str:
    schedules = page["records"]
    rows = [[s["id"], s.get("cron", ""), s.get("state", ""), "yes" if s.get("incremental") else "no",
             _time(s.get("lastSlot")), s.get("lastJobId", ""), s.get("lastError", "")] for s in schedules]
    return grid(["ID", "CRON", "STATE", "INCREMENTAL", "LAST SLOT (UTC)", "LAST JOB", "LAST ERROR"], rows) + _next(page)


def schedule_table(schedule: Row) -> str:
    return schedules_table({"records": [schedule]})


def _short(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _next(page: Row) -> str:
    """The next page's cursor, from the JSON's `link.next`."""
    following = (page.get("link") or {}).get("next")
    offset = parse_qs(urlsplit(following).query).get("offset", [""])[0] if following else ""
    return f"\nnext page: --offset {offset}" if offset else ""


# What `--output table` prints for each command's JSON answer.
TABLES: dict[str, Callable[[Any], str]] = {
    "get": job_table, "list": jobs_table, "segment get": segment_table, "segment list": segments_table,
    "schedule get": schedule_table, "schedule list": schedules_table,
}
