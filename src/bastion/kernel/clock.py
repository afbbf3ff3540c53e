"""Time, from one injectable clock.

Code that needs the time asks the clock it was given: `uow.now()` inside a unit of work,
`database.clock.now()` in jobs. Tests hand the database a clock they can move, instead of
patching module attributes.
"""

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM_CLOCK = SystemClock()


def unix_seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def unix_seconds_or_none(moment: datetime | None) -> int | None:
    """`unix_seconds`, for the optional moments resources show as null."""
    return None if moment is None else unix_seconds(moment)
