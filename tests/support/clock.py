"""Clocks tests can move: handed to a `Database`, they are the time of everything on it."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta


class ShiftedClock:
    """The real time plus an offset that a test may move forward for a while."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    @contextmanager
    def shifted(self, delta: timedelta) -> Iterator[None]:
        """Time `delta` ahead inside the block, back to real time after it."""
        self.offset += delta
        try:
            yield
        finally:
            self.offset -= delta


class ManualClock:
    """Stands still until a test advances it."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def advance(self, delta: timedelta) -> None:
        self.moment += delta
