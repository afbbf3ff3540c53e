"""Velocity: exact counts of attempts, charges, declines, amounts and distinct cards per card,
customer, email, IP address and device, over the last hour, day, week and all time, the current
attempt included (docs/risk.md, Velocity).

The counts live in a store: PostgreSQL by default (`PostgresVelocity`), or Redis for scale
(`bastion.risk.velocity_redis`, ADR 22); both answer the same tallies, and the same tests hold
them to it. A window is open at its start: an attempt exactly an hour old is no longer in the
last hour."""

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from bastion.platform.db import UnitOfWork
from bastion.risk import repository
from bastion.risk.attributes import VELOCITY_SUBJECTS, VELOCITY_WINDOWS

WINDOWS = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(days=7)}
# Distinct cards are counted for these subjects (a card's own count of cards is one).
CARD_COUNT_SUBJECTS = ("ip", "device", "customer")
MEASURES = ("attempts", "charges", "declines", "amount_in_usd")
# Events leave a subject's counts a day after they leave the week (an attempt counted just after
# a later one still finds all of its week); PostgreSQL prunes at most PRUNED_MAX per attempt.
PRUNED_AFTER = timedelta(days=8)
PRUNED_MAX = 1_000
SUCCEEDED: Final = "succeeded"
DECLINED: Final = "declined"

Counters = dict[str, int | Decimal | bool | None]


class VelocityUnavailable(Exception):
    """The store did not count the attempt (Redis down or too slow): the merchant's failure
    policy decides, as when the time budget runs out."""


# A subject's counts with the attempt, by f"{measure}_{window}" for each of MEASURES and
# VELOCITY_WINDOWS, and by f"cards_{window}" for those of CARD_COUNT_SUBJECTS.
Tally = Mapping[str, int | Decimal]


@dataclass(frozen=True, slots=True)
class Counted:
    """One attempt, by who it is counted for: `subjects` maps a subject kind (card, customer,
    email, ip, device) to its value, for those the attempt has."""

    attempt_id: str
    subjects: dict[str, str]
    card_fingerprint: str | None
    amount_in_usd: Decimal | None
    at: datetime

    def window_starts(self) -> dict[str, datetime]:
        """Each window's start, before the attempt: open, an event at the start is out."""
        return {name: self.at - span for name, span in WINDOWS.items()}


def subject_key(kind: str, value: str) -> str:
    return f"{kind}:{value.lower() if kind == 'email' else value}"


class Velocity(ABC):
    """The velocity counters, in a store of the subclass's."""

    async def count_attempt(self, uow: UnitOfWork, attempt: Counted) -> Counters:
        """Count the attempt and answer every velocity attribute: a subject the attempt does not
        have gives missing values, and so does an amount sum when its own amount has no rate."""
        keys = {kind: subject_key(kind, value) for kind, value in attempt.subjects.items() if kind in VELOCITY_SUBJECTS}
        counters: Counters = {}
        if not keys:
            return _missing(counters, VELOCITY_SUBJECTS)
        card_subjects = [keys[kind] for kind in CARD_COUNT_SUBJECTS if kind in keys] if attempt.card_fingerprint else []
        # In the order of their names: two attempts sharing subjects take them in one order.
        tallies, first_seen = await self.count(uow, attempt, sorted(keys.values()), card_subjects)
        # A device that never saw this card: a new device for it.
        counters["is_new_device"] = keys["device"] in first_seen if "device" in keys else None
        for kind, key in keys.items():
            _subject_counters(counters, kind, tallies[key], known_amount=attempt.amount_in_usd is not None)
        return _missing(counters, [kind for kind in VELOCITY_SUBJECTS if kind not in keys])

    async def record_outcome(self, uow: UnitOfWork, attempt_id: str, *, succeeded: bool) -> None:
        """The attempt's outcome, once known: a charge or a decline in its subjects' counts.
        Recorded once: a second outcome of the same attempt changes nothing."""
        await self.record(uow, attempt_id, SUCCEEDED if succeeded else DECLINED)

    @abstractmethod
    async def count(
        self, uow: UnitOfWork, attempt: Counted, subjects: list[str], card_subjects: list[str]
    ) -> tuple[dict[str, Tally], set[str]]:
        """Count the attempt for `subjects` and its card for `card_subjects`, exactly: of two
        attempts on a subject, the later counted sees the earlier. Each subject's tally, and
        those of `card_subjects` that had not seen the card before. An attempt is counted once
        even when its command is resumed: on PostgreSQL the count commits with the decision,
        which answers the resumed command; Redis keeps a record of the attempt."""

    @abstractmethod
    async def record(self, uow: UnitOfWork, attempt_id: str, outcome: str) -> None:
        """`outcome` (SUCCEEDED or DECLINED) in the counts of the attempt's subjects, once."""

    @abstractmethod
    async def close(self) -> None:
        """Let go of the store's connections (the API's shutdown)."""


class PostgresVelocity(Velocity):
    """The counts in the merchant's own rows, in the assessment's transaction. An attempt first
    takes the row of each of its subjects, which it holds until its transaction commits; the next
    attempt on a subject waits for it, and its counts, read after, include it. So 100 concurrent
    attempts on one card see 1 to 100, each once."""

    async def count(
        self, uow: UnitOfWork, attempt: Counted, subjects: list[str], card_subjects: list[str]
    ) -> tuple[dict[str, Tally], set[str]]:
        connection, tenant = uow.connection, uow.tenant
        # Taking the subjects' rows first: what the next statement reads, after, is exact.
        all_time = await repository.count_subjects(connection, tenant, subjects, attempt.amount_in_usd, attempt.at)
        windows = await repository.record_velocity_event(
            connection,
            tenant,
            subjects=subjects,
            attempt_id=attempt.attempt_id,
            at=attempt.at,
            amount_in_usd=attempt.amount_in_usd,
            card_subjects=card_subjects,
            card_fingerprint=attempt.card_fingerprint,
            window_starts=attempt.window_starts(),
            pruned_before=attempt.at - PRUNED_AFTER,
            pruned_max=PRUNED_MAX,
        )
        tallies: dict[str, Tally] = {
            key: {f"{measure}_all_time": all_time[key][measure] for measure in MEASURES} | dict(windows[key]) for key in subjects
        }
        first_seen = {key for key in subjects if windows[key]["card_first_seen"]}
        return tallies, first_seen

    async def record(self, uow: UnitOfWork, attempt_id: str, outcome: str) -> None:
        await repository.record_velocity_outcome(uow.connection, uow.tenant, attempt_id, outcome)

    async def close(self) -> None:
        """The connections are the unit of work's: nothing of its own to let go of."""


def _subject_counters(counters: Counters, kind: str, tally: Tally, *, known_amount: bool) -> None:
    for measure in MEASURES:
        for window in VELOCITY_WINDOWS:
            counters[f"{measure}_per_{kind}_{window}"] = (
                tally[f"{measure}_{window}"] if known_amount or measure != "amount_in_usd" else None
            )
    if kind in CARD_COUNT_SUBJECTS:
        for window in VELOCITY_WINDOWS:
            counters[f"card_count_for_{kind}_{window}"] = tally[f"cards_{window}"]


def _missing(counters: Counters, kinds: Iterable[str]) -> Counters:
    counters.setdefault("is_new_device", None)
    for kind in kinds:
        for measure in MEASURES:
            for window in VELOCITY_WINDOWS:
                counters[f"{measure}_per_{kind}_{window}"] = None
        if kind in CARD_COUNT_SUBJECTS:
            for window in VELOCITY_WINDOWS:
                counters[f"card_count_for_{kind}_{window}"] = None
    return counters
