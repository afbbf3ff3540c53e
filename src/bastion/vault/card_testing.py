"""Card testing: a client that runs many card numbers through the card fields to learn which
ones are real. Counted per client IP, per device and per publishable key, in each vault
process (with `--workers N`, each process counts its own share of the traffic).

An attempt counts when its card was refused (a bad number, expiry or security code, or a real
card in test mode); for a client IP or a device, also when it brings a card that client has not
tokenized within the window. The same good card again does not count, so a shopper who pays
twice is not a tester; a publishable key counts refusals only, since a busy shop sees many
distinct cards from its many shoppers. A subject whose count passes its limit is throttled
for `THROTTLE_S`: its tokenizations answer 429 `card_testing_suspected` at once, before any
card check or database write.
"""

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from bastion.platform.crypto import KeyedHasher
from bastion.vault.errors import CardTestingSuspected

WINDOW_S = 600.0
THROTTLE_S = 600.0
# Subjects remembered at once (oldest dropped first): bounds the memory a flood of IPs can take.
SUBJECTS_TRACKED_MAX = 100_000


class SubjectKind(StrEnum):
    CLIENT_IP = "client_ip"
    DEVICE = "device"
    PUBLISHABLE_KEY = "publishable_key"


@dataclass(frozen=True, slots=True)
class Subject:
    kind: SubjectKind
    value: str


@dataclass(frozen=True, slots=True)
class Limits:
    """Counted attempts a subject may make within `WINDOW_S`."""

    per_client: int
    per_key: int

    def of(self, subject: Subject) -> int:
        return self.per_key if subject.kind is SubjectKind.PUBLISHABLE_KEY else self.per_client


@dataclass(frozen=True, slots=True)
class Tripped:
    """A subject that just passed its limit: recorded once per throttle (of THROTTLE_S)."""

    subject: Subject
    failures: int
    distinct_cards: int


@dataclass(slots=True)
class _Window:
    failures: deque[float] = field(default_factory=deque)
    cards: dict[str, float] = field(default_factory=dict)
    throttled_until: float = 0.0

    def prune(self, now: float) -> None:
        horizon = now - WINDOW_S
        while self.failures and self.failures[0] <= horizon:
            self.failures.popleft()
        # Oldest first: a card seen again is moved to the end (see `observe`).
        while self.cards and next(iter(self.cards.values())) <= horizon:
            del self.cards[next(iter(self.cards))]

    def count(self) -> int:
        return len(self.failures) + len(self.cards)


class CardTestingGuard:
    def __init__(self, limits: Limits, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._monotonic = monotonic
        self._windows: OrderedDict[Subject, _Window] = OrderedDict()
        # Cards are remembered by a keyed hash whose key lives only in this process's memory.
        self._cards = KeyedHasher(secrets.token_bytes(32))

    def check(self, subjects: Iterable[Subject]) -> None:
        """Refuse at once when any of `subjects` is throttled."""
        now = self._monotonic()
        waits = [window.throttled_until - now for subject in subjects if (window := self._windows.get(subject)) is not None]
        if (wait_s := max(waits, default=0.0)) > 0:
            raise CardTestingSuspected(
                "Too many cards tried from this client: tokenization is paused. Try again later.",
                retry_after_s=max(1, round(wait_s)),
            )

    def observe(self, subjects: Iterable[Subject], card_number: str | None) -> list[Tripped]:
        """Count one attempt: `card_number` (digits) when the card was tokenized, None when it
        was refused. The subjects this attempt put over their limit."""
        now = self._monotonic()
        card = None if card_number is None else self._cards.digest(card_number)
        tripped: list[Tripped] = []
        for subject in subjects:
            window = self._window(subject)
            window.prune(now)
            if card is None:
                window.failures.append(now)
            elif subject.kind is not SubjectKind.PUBLISHABLE_KEY:
                window.cards.pop(card, None)
                window.cards[card] = now
            if window.count() > self.limits.of(subject) and window.throttled_until <= now:
                window.throttled_until = now + THROTTLE_S
                tripped.append(Tripped(subject, len(window.failures), len(window.cards)))
        return tripped

    def _window(self, subject: Subject) -> _Window:
        window = self._windows.pop(subject, None) or _Window()
        self._windows[subject] = window
        if len(self._windows) > SUBJECTS_TRACKED_MAX:
            self._windows.popitem(last=False)
        return window
