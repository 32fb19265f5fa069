"""What a step's execute() returns; the runner turns it into state changes."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Continue:
    """Go on at once with `next_step` (None: the journey ends here, completed)."""

    next_step: Any
    branch: str = ""
    message: Any = None
    detail: str = ""


@dataclass(frozen=True)
class WaitUntil:
    """Sleep until `at`, then go on with `next_step`."""

    at: datetime
    next_step: Any
    detail: str = ""


@dataclass(frozen=True)
class WaitForEvent:
    """Stay on this step until an event named `event_name` (whose data holds
    `value` under `key`, when `key` is given) is received after `since`; the
    step runs again then, or at `timeout_at` if none comes."""

    event_name: str
    since: datetime
    timeout_at: datetime
    key: str = ""
    value: str = ""
    detail: str = ""


@dataclass(frozen=True)
class RetryAt:
    """Run this same step again at `at` (a transient failure, e.g. SMTP down)."""

    at: datetime
    message: Any = None
    detail: str = ""


@dataclass(frozen=True)
class Complete:
    """End the passage here, as the journey means it to: the contact has
    completed the journey (an exit step), as one who runs off its last step has."""

    detail: str = ""


@dataclass(frozen=True)
class Exit:
    """Leave the journey now, before its end."""

    reason: str = "exit step"
    detail: str = ""
    extra: dict = field(default_factory=dict)
    kind: str = "other"  # an Enrollment.ExitKind


@dataclass(frozen=True)
class Holdout:
    """Leave the journey into its control group: sent nothing more, but still
    counted for the goal, so conversions can be compared with those who
    stayed (the journey's lift)."""

    detail: str = ""


@dataclass(frozen=True)
class Abandoned:
    """Another worker holds this enrollment now: leave it alone."""

    detail: str = ""


Outcome = Continue | WaitUntil | WaitForEvent | RetryAt | Exit | Holdout | Abandoned
