"""Recurring exports (docs/reference/schedules.md): the cron expression, the request and the stored schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

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


_QUARTZ_DAYS = {str(n): str(n - 1) for n in range(1, 8)}  # Quartz's 1-7 are SUN-SAT; cron's 0-6


def quartz_cron(expression: str) -> str:
    """A Quartz cron expression (AEP's schedules: `sec min hour day-of-month month day-of-week [year]`,
    with `?`, `L`, `W` and `#`) as the 5-field expression the scheduler runs. Schedules fire on whole
    minutes, so the seconds must be 0, and the year, if given, `*`. ValueError says what is wrong."""
    parts = expression.split()
    if len(parts) not in (6, 7):
        raise ValueError(f"{expression!r} is not a Quartz cron expression of 6 or 7 fields "
                         "(seconds minutes hours day-of-month month day-of-week [year]), e.g. '0 0 1 * * ?'")
    if parts[0] != "0":
        raise ValueError(f"seconds {parts[0]!r}: schedules fire on whole minutes, so the seconds field must be 0")
    if len(parts) == 7 and parts[6] != "*":
        raise ValueError(f"year {parts[6]!r}: only * is supported")
    minute, hour, day, month, weekday = parts[1:6]
    if "?" not in (day, weekday):
        raise ValueError("Quartz needs ? in day-of-month or in day-of-week (the one left unspecified)")
    cron = " ".join([minute, hour, day, month, _cron_weekdays(weekday)])
    if not croniter.is_valid(cron):
        raise ValueError(f"{expression!r} uses a form the scheduler does not support (e.g. 6L, the last "
                         "Friday): use ranges, lists, steps, L or W in day-of-month, or # in day-of-week")
    return cron


def _cron_weekdays(field: str) -> str:
    """Quartz's day-of-week numbers (1 = Sunday) as cron's (0 = Sunday); names and ? as they are."""
    def day(token: str) -> str:
        if token.isdigit() and token not in _QUARTZ_DAYS:
            raise ValueError(f"day-of-week {token!r} is outside 1-7 (1 = Sunday)")
        return _QUARTZ_DAYS.get(token, token)

    items = []
    for item in field.split(","):
        base, slash, step = item.partition("/")
        base, hash_, nth = base.partition("#")
        base = "-".join(day(t) for t in base.split("-"))
        items.append(base + hash_ + nth + slash + step)
    return ",".join(items)


def latest_slot(expression: str, now: datetime, earliest: datetime) -> datetime | None:
    """The latest minute ≤ now (and ≥ earliest) that the cron expression fires at, in UTC.

    croniter computes it field by field, so a schedule that rarely or never fires (`0 0 31 2 *`)
    costs no more than one that fires every minute. `day_or=False`: a day of month and a day of
    week both given must both hold, as parse_cron reads them (a Quartz `?` is croniter's `*`).
    """
    if not croniter.is_valid(_ALIASES.get(expression.strip(), expression)):
        raise ValueError(f"{expression!r} is not a cron expression")
    after_now = now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    years = max(1, after_now.year - earliest.year + 1)
    try:
        slot = croniter(_ALIASES.get(expression.strip(), expression), after_now, day_or=False,
                        max_years_between_matches=years).get_prev(datetime)
    except CroniterBadDateError:  # no slot in those years
        return None
    return slot if slot >= earliest else None


def next_slots(expression: str, now: datetime, count: int, within_years: int = 5) -> list[datetime]:
    """The next `count` minutes after `now` that the cron expression fires at, in UTC, read as latest_slot
    reads it; fewer if it fires fewer times in `within_years` years."""
    cron = _ALIASES.get(expression.strip(), expression)
    if not croniter.is_valid(cron):
        raise ValueError(f"{expression!r} is not a cron expression")
    slots = croniter(cron, now.astimezone(UTC).replace(second=0, microsecond=0), day_or=False,
                     max_years_between_matches=within_years)
    found: list[datetime] = []
    try:
        while len(found) < count:
            found.append(slots.get_next(datetime))
    except CroniterBadDateError:  # no further slot in those years
        pass
    return found


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


class ExportProperties(Strict):
    """An `export` schedule's properties: the job each slot creates, and whether it is incremental."""

    job: dict[str, Any]
    incremental: bool = False


class SegmentationProperties(Strict):
    """A `batch_segmentation` schedule's properties: the segments each slot's segment job evaluates,
    as segment ids or ["*"] (every definition of the sandbox when the slot comes)."""

    segments: list[str] = Field(min_length=1)


class AepScheduleRequest(Strict):
    """The body of POST /config/schedules in AEP's shape."""

    name: str = Field(min_length=1)
    type: Literal["export", "batch_segmentation"]
    properties: dict[str, Any]
    schedule: str = Field(min_length=1)  # Quartz cron
    state: Literal["active", "inactive"] = "active"

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        quartz_cron(value)
        return value


# A schedule's state: run at its slots, paused (a PATCH of /state), or stopped after its job failed to be
# created too often.
SCHEDULE_ACTIVE, SCHEDULE_INACTIVE, SCHEDULE_FAILED = "active", "inactive", "failed"


class Schedule(Record):
    """A stored schedule, and where its runs have got to."""

    id: str
    ims_org_id: str
    sandbox_name: str
    cron: str  # the 5-field expression the scheduler runs (quartz_cron of `schedule`)
    incremental: bool
    job: JobDefinition | None  # an export schedule's job; None for batch_segmentation
    creation_time: int
    name: str | None = None
    type: Literal["export", "batch_segmentation"] = "export"
    schedule: str | None = None  # the Quartz expression as given (AEP's shape); None for a 5-field `cron`
    segments: list[str] | None = None  # a batch_segmentation schedule's segment ids, or ["*"]
    # Slots before this (epoch ms) are never run: the latest resume or schedule change (None: never changed).
    active_since: int | None = None
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
    def _job(self, job: JobDefinition | None) -> dict[str, Any] | None:
        return job.model_dump(mode="json", by_alias=True, exclude_none=True) if job is not None else None

    def properties(self) -> dict[str, Any]:
        """AEP's `properties` of the schedule."""
        if self.type == "batch_segmentation":
            return {"segments": self.segments}
        return {"job": self._job(self.job), "incremental": self.incremental}

    def to_dict(self) -> dict[str, Any]:
        # null fields shown: a reader sees what is unset; `properties` and `schedule` as AEP answers them.
        shown = self.model_dump(mode="json", by_alias=True)
        return {**shown, "properties": self.properties(), "schedule": self.schedule or self.cron}


