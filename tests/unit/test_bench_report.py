"""How the export benchmark's report shows a measured value beside its target."""

from __future__ import annotations

import pytest

from benchmarks.report import against


@pytest.mark.parametrize(("value", "limit", "shown"), [
    (1.38, 1.5, "1.38"),
    (1.5, 1.5, "1.50"),
    (1.5009, 1.5, "1.501"),  # not met, though two decimals would show the limit itself
    (1.4996, 1.5, "1.500"),  # met
    (0.1, 1.0, "0.10"),
])
def test_a_value_that_rounds_to_its_limit_gets_a_third_decimal(value, limit, shown):
    assert against(value, limit) == shown
