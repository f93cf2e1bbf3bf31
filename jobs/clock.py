"""Time as the job table and the records keep it: epoch milliseconds, and the lake's epoch microseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms() -> int:
    return int(time.time() * 1000)


def from_micros(micros: int) -> datetime:
    """Epoch microseconds (Spark's timestamps, e.g. a watermark) as an aware UTC datetime, exactly."""
    return EPOCH + timedelta(microseconds=micros)
