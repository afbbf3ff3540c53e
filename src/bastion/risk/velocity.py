"""Velocity: exact counts of attempts, charges, declines, amounts and distinct cards per card,
customer, email, IP address and device, over the last hour, day, week and all time, the current
attempt included (docs/risk.md, Velocity).

Exact under concurrency: an attempt first takes the row of each of its subjects (in one order),
which it holds until its transaction commits; the next attempt on a subject waits for it, and its
counts, read after, include it. So 100 concurrent attempts on one card see 1 to 100, each once.
A window is open at its start: an attempt exactly an hour old is no longer in the last hour."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from bastion.platform.db import AnyRow, UnitOfWork
from bastion.risk import repository
from bastion.risk.attributes import VELOCITY_SUBJECTS, VELOCITY_WINDOWS

WINDOWS = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(days=7)}
# Distinct cards are counted for these subjects (a card's own count of cards is one).
CARD_COUNT_SUBJECTS = ("ip", "device", "customer")
_MEASURES = ("attempts", "charges", "declines", "amount_in_usd")

Counters = dict[str, int | Decimal | bool | None]


@dataclass(frozen=True, slots=True)
class Counted:
    """One attempt, by who it is counted for: `subjects` maps a subject kind (card, customer,
    email, ip, device) to its value, for those the attempt has."""

    attempt_id: str
    subjects: dict[str, str]
    card_fingerprint: str | None
    amount_in_usd: Decimal | None
    at: datetime


def subject_key(kind: str, value: str) -> str:
    return f"{kind}:{value.lower() if kind == 'email' else value}"


async def count_attempt(uow: UnitOfWork, attempt: Counted) -> Counters:
    """Count the attempt and answer every velocity attribute: a subject the attempt does not
    have gives missing values, and so does an amount sum when its own amount has no rate."""
    keys = {kind: subject_key(kind, value) for kind, value in attempt.subjects.items() if kind in VELOCITY_SUBJECTS}
    counters: Counters = {}
    if not keys:
        return _missing(counters, VELOCITY_SUBJECTS)
    connection, tenant = uow.connection, uow.tenant
    all_time = await repository.count_subjects(connection, tenant, sorted(keys.values()), attempt.amount_in_usd, attempt.at)
    card_subjects = [keys[kind] for kind in CARD_COUNT_SUBJECTS if kind in keys] if attempt.card_fingerprint else []
    first_seen = await repository.record_velocity_event(
        connection,
        tenant,
        subjects=list(keys.values()),
        attempt_id=attempt.attempt_id,
        at=attempt.at,
        amount_in_usd=attempt.amount_in_usd,
        card_subjects=card_subjects,
        card_fingerprint=attempt.card_fingerprint,
    )
    since = {name: attempt.at - span for name, span in WINDOWS.items()}
    windows = await repository.velocity_windows(connection, tenant, list(keys.values()), since)
    # A device that never saw this card: a new device for it.
    counters["is_new_device"] = keys["device"] in first_seen if "device" in keys else None
    for kind, key in keys.items():
        # The attempt's own event is in every window: each subject has its row.
        _subject_counters(counters, kind, all_time[key], windows[key], known_amount=attempt.amount_in_usd is not None)
    return _missing(counters, [kind for kind in VELOCITY_SUBJECTS if kind not in keys])


def _subject_counters(counters: Counters, kind: str, all_time: AnyRow, windows: AnyRow, *, known_amount: bool) -> None:
    for measure in _MEASURES:
        name = f"{measure}_per_{kind}"
        for window in WINDOWS:
            counters[f"{name}_{window}"] = windows[f"{measure}_{window}"]
        counters[f"{name}_all_time"] = all_time[measure]
    if not known_amount:
        for window in VELOCITY_WINDOWS:
            counters[f"amount_in_usd_per_{kind}_{window}"] = None
    if kind in CARD_COUNT_SUBJECTS:
        for window in VELOCITY_WINDOWS:
            counters[f"card_count_for_{kind}_{window}"] = windows[f"cards_{window}"]


def _missing(counters: Counters, kinds: Iterable[str]) -> Counters:
    counters.setdefault("is_new_device", None)
    for kind in kinds:
        for measure in _MEASURES:
            for window in VELOCITY_WINDOWS:
                counters[f"{measure}_per_{kind}_{window}"] = None
        if kind in CARD_COUNT_SUBJECTS:
            for window in VELOCITY_WINDOWS:
                counters[f"card_count_for_{kind}_{window}"] = None
    return counters


async def record_outcome(uow: UnitOfWork, attempt_id: str, *, succeeded: bool) -> None:
    """The attempt's outcome, once known: a charge or a decline in its subjects' counts."""
    await repository.record_velocity_outcome(uow.connection, uow.tenant, attempt_id, "succeeded" if succeeded else "declined")
