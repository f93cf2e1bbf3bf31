"""How an evaluation changes a profile's membership in a segment (docs/reference/segments.md#segment-evaluation).

`TRANSITIONS` is the one statement of the rule; `next_membership` applies it in
Python (tests, reasoning) and the engine compiles the same table into one Spark
CASE expression (jobs.engine.evaluation.evaluated_membership).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Status = Literal["realized", "existing", "exited"]
QUALIFIED: tuple[Status, ...] = ("realized", "existing")  # what inSegment and segmentedProfileCounter count

# (previous status or None, qualifies) -> (new status or None, the qualification time: "now" or "kept")
TRANSITIONS: dict[tuple[Status | None, bool], tuple[Status | None, Literal["now", "kept"] | None]] = {
    (None, True): ("realized", "now"),
    ("exited", True): ("realized", "now"),
    ("realized", True): ("existing", "kept"),
    ("existing", True): ("existing", "kept"),
    ("realized", False): ("exited", "now"),
    ("existing", False): ("exited", "now"),
    ("exited", False): ("exited", "kept"),
    (None, False): (None, None),
}


@dataclass(frozen=True)
class Membership:
    status: Status
    last_qualification_time: datetime | None


def next_membership(previous: Membership | None, qualifies: bool, now: datetime) -> Membership | None:
    """The membership after an evaluation at `now`; None: the profile has none."""
    status, time = TRANSITIONS[(previous.status if previous else None, qualifies)]
    if status is None:
        return None
    if time == "now" or previous is None:
        return Membership(status, now)
    return Membership(status, previous.last_qualification_time)
