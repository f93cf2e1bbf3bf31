"""Recurring exports (docs/reference/schedules.md): the cron expression, the request and the stored schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import CroniterBadDateError, croniter
from pydantic import Field, field_serializer, field_validator

from jobs.spec.jobs import JobDefinition
from jobs.spec.models import Record, Strict

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))
_ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *"}


def parse_cron(expression: str) -> list[set[int]]:
    """Five fields (minute hour day-of-month month day-of-week) with *, a-b, a,b and /step."""
    text = _ALIASES.get(expression.strip(), expression)
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(f"{expression!r} is not a cron expression of 5 fields, e.g. '0 * * * *'")
    sets = []
    for part, (name, low, high) in zip(parts, _FIELDS, strict=True):
        values: set[int] = set()
        for item in part.split(","):
            base, _, step_text = item.partition("/")
            try:
                step = int(step_text) if step_text else 1
                if base == "*":
                    start, end = low, high
                elif "-" in base:
                    start, end = (int(x) for x in base.split("-"))
                else:
                    start = int(base)
                    end = high if step_text else start
            except ValueError:
                raise ValueError(f"cron {name} {item!r} is not a number, range or step") from None
            if not (low <= start <= end <= high) or step < 1:
                raise ValueError(f"cron {name} {item!r} is outside {low}-{high}")
            values.update(range(start, end + 1, step))
        sets.append(values)
    return sets


def latest_slot(expression: str, now: datetime, earliest: datetime) -> datetime | None:
    """The latest minute ≤ now (and ≥ earliest) that the cron expression fires at, in UTC.

    croniter computes it field by field, so a schedule that rarely or never fires (`0 0 31 2 *`)
    costs no more than one that fires every minute. `day_or=False`: a day of month and a day of
    week both given must both hold, as parse_cron reads them.
    """
    parse_cron(expression)
    after_now = now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    years = max(1, after_now.year - earliest.year + 1)
    try:
        slot = croniter(_ALIASES.get(expression.strip(), expression), after_now, day_or=False,
                        max_years_between_matches=years).get_prev(datetime)
    except CroniterBadDateError:  # no slot in those years
        return None
    return slot if slot >= earliest else None


class ScheduleRequest(Strict):
    """The body of POST /config/schedules and `export-jobs schedule create`."""

    cron: str = Field(min_length=1)
    incremental: bool = False
    job: dict[str, Any]

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        parse_cron(value)
        return value


# A schedule's state: run at its slots, or stopped after its job failed to be created too often.
SCHEDULE_ACTIVE, SCHEDULE_FAILED = "active", "failed"


class Schedule(Record):
    """A stored schedule, and where its runs have got to."""

    id: str
    ims_org_id: str
    sandbox_name: str
    cron: str
    incremental: bool
    job: JobDefinition
    creation_time: int
    last_slot: int | None = None
    last_job_id: int | None = None
    claim_time: int | None = Field(default=None, exclude=True)  # the scheduler's business, not a reader's
    skipped_slots: int = 0
    last_skipped_slot: int | None = None
    watermark: str | None = None  # RFC 3339, for people; the table keeps µs
    state: str = SCHEDULE_ACTIVE
    error_count: int = 0  # slots in a row whose job could not be created
    last_error: str | None = None

    @field_serializer("job")
    def _job(self, job: JobDefinition) -> dict[str, Any]:
        return job.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)  # null fields shown: a reader sees what is unset


