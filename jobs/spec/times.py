"""Time as the job table and the records keep it (epoch milliseconds), the lake's epoch microseconds,
and RFC 3339 timestamps as requests and records show them."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms() -> int:
    return int(time.time() * 1000)


def from_micros(micros: int) -> datetime:
    """Epoch microseconds (Spark's timestamps, e.g. a watermark) as an aware UTC datetime, exactly."""
    return EPOCH + timedelta(microseconds=micros)


_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_rfc3339(value: Any) -> datetime:
    """An RFC 3339 string with a zone (or an aware datetime) as a UTC datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp needs a time zone")
        return value.astimezone(UTC)
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError(
            f"{value!r} is not an RFC 3339 timestamp with a zone, e.g. 2018-01-01T00:00:00Z"
        )
    text = value.upper()
    # Python parses at most microseconds: cut longer fractions.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError as err:
        raise ValueError(f"{value!r} is not a valid timestamp: {err}") from None


def format_rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_rfc3339),
    PlainSerializer(format_rfc3339, return_type=str),
]

