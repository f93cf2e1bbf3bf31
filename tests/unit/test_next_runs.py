"""A schedule's next runs: the cron expression's next minutes, read as the scheduler reads it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobs.spec import next_slots, quartz_cron

NOW = datetime(2026, 12, 7, 5, 30, 20, tzinfo=UTC)


def test_the_next_minutes_a_cron_expression_fires_at():
    assert next_slots("*/20 * * * *", NOW, 3) == [datetime(2026, 12, 7, 5, 40, tzinfo=UTC),
                                                  datetime(2026, 12, 7, 6, 0, tzinfo=UTC),
                                                  datetime(2026, 12, 7, 6, 20, tzinfo=UTC)]
    assert next_slots("@daily", NOW, 1) == [datetime(2026, 12, 8, tzinfo=UTC)]
    # Quartz's 2 is Monday; this Monday's 02:30 has passed.
    assert next_slots(quartz_cron("0 30 2 ? * 2"), NOW, 1) == [datetime(2026, 12, 14, 2, 30, tzinfo=UTC)]


def test_a_day_of_month_and_a_day_of_week_must_both_hold():
    # After 7 December 2026, the next Friday the 13th is in August 2027.
    assert next_slots("0 0 13 * 5", NOW, 1) == [datetime(2027, 8, 13, tzinfo=UTC)]


def test_an_expression_that_never_fires_has_no_next_run():
    assert next_slots("0 0 31 2 *", NOW, 3) == []
    with pytest.raises(ValueError, match="not a cron expression"):
        next_slots("every day", NOW, 1)
