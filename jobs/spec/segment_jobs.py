"""Segment jobs in the shape of AEP's `/segment/jobs` (docs/reference/segments.md#segment-jobs): the
request, a JSON array of `{"segmentId"}` or `["*"]`, and the statuses a segment job answers with.

A segment job is kept in the job table as a job record of `jobType` SEGMENTATION, so that one runner
runs every kind of job with the same leases, retries and cancels; it evaluates its segments and writes
back their memberships, and exports nothing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from jobs.spec.errors import Problem, RequestRejected, json_value
from jobs.spec.jobs import JobStatus
from jobs.spec.models import Strict

ALL_SEGMENTS = "*"
SegmentJobStatus = Literal["QUEUED", "PROCESSING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED"]


class SegmentJobItem(Strict):
    segment_id: str = Field(min_length=1)


def parse_segment_job_request(body: str | bytes | list[Any]) -> list[str] | None:
    """The listed segment ids, in order and each once; None for `["*"]` (every definition of the
    sandbox). RequestRejected with each problem at its path (`[1].segmentId`)."""
    value = body if isinstance(body, list) else json_value(body)
    if not isinstance(value, list) or not value:
        raise RequestRejected.at("$", 'send a JSON array of {"segmentId": ...} objects, or ["*"] for every '
                                      "segment definition of the sandbox")
    if value == [ALL_SEGMENTS]:
        return None
    problems: list[Problem] = []
    ids: list[str] = []
    for i, item in enumerate(value):
        if item == ALL_SEGMENTS:
            problems.append(Problem(path=f"[{i}]", message='"*" stands alone: it means every definition'))
            continue
        try:
            segment = SegmentJobItem.parse(item) if isinstance(item, dict) else None
        except RequestRejected as err:
            problems += [Problem(path=f"[{i}].{p.path}", message=p.message) for p in err.problems]
            continue
        if segment is None:
            problems.append(Problem(path=f"[{i}]", message='is not an object {"segmentId": ...}'))
        elif segment.segment_id in ids:
            problems.append(Problem(path=f"[{i}].segmentId", message=f"segment {segment.segment_id!r} is listed twice"))
        else:
            ids.append(segment.segment_id)
    if problems:
        raise RequestRejected(problems)
    return ids


def segment_job_status(status: JobStatus) -> SegmentJobStatus:
    """AEP's name of a job status: NEW is QUEUED."""
    return "QUEUED" if status is JobStatus.NEW else status.value  # type: ignore[return-value]


def job_status(status: SegmentJobStatus) -> JobStatus:
    return JobStatus.NEW if status == "QUEUED" else JobStatus(status)
