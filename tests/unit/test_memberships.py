"""The status table of an evaluation, as a pure function."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobs.spec.memberships import Membership, next_membership

NOW = datetime(2024, 6, 1, tzinfo=UTC)
EARLIER = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("previous, qualifies, expected", [
    (None, True, Membership("realized", NOW)),
    (Membership("exited", EARLIER), True, Membership("realized", NOW)),
    (Membership("realized", EARLIER), True, Membership("existing", EARLIER)),
    (Membership("existing", EARLIER), True, Membership("existing", EARLIER)),
    (Membership("realized", EARLIER), False, Membership("exited", NOW)),
    (Membership("existing", EARLIER), False, Membership("exited", NOW)),
    (Membership("exited", EARLIER), False, Membership("exited", EARLIER)),
    (None, False, None),
])
def test_the_status_table(previous, qualifies, expected):
    assert next_membership(previous, qualifies, NOW) == expected
