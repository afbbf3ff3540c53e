"""The attribute values an attempt brings with it, before anything is counted: the payment, the
card, the customer, and what the card fields saw of the device and of the shopper's typing
(docs/risk.md, Attributes). Pure: the same attempt and moment give the same values."""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from disposable_email_domains import blocklist

from bastion.kernel.devices import device_id
from bastion.kernel.money import Money
from bastion.risk.geo import Location
from bastion.risk.rules import AttributeValue

_DAY_S = 86_400

# The sandbox's risk test cards, as Stripe documents them (test mode only; docs/risk.md).
TEST_CARD_ALWAYS_BLOCKED = "0019"
_TEST_CARD_LEVELS = {TEST_CARD_ALWAYS_BLOCKED: ("highest", 95), "4954": ("highest", 85), "9235": ("elevated", 70)}
NO_MODEL = ("normal", 0)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A payment attempt as payments describes it to risk: no card data but the brand, funding,
    fingerprint and last four digits."""

    attempt_id: str
    payment_intent_id: str
    amount: int
    currency: str
    card_brand: str
    card_funding: str
    card_fingerprint: str
    card_last4: str
    livemode: bool
    card_bin: str | None = None
    customer_id: str | None = None
    customer_email: str | None = None
    customer_created: int | None = None  # unix seconds
    ip_address: str | None = None
    # The terminal the payment's metadata names (`terminal_id` or `store_id`), for the fraud
    # models' per-terminal features; None: the merchant is the terminal (docs/risk-ml.md).
    terminal: str | None = None
    # The payment method's `signals`: {"device": {...}, "behaviour": {...}} (vault/schemas.py).
    signals: Mapping[str, Any] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        return asdict(self) | {"signals": dict(self.signals)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "Attempt":
        return cls(**state)


def score_and_level(attempt: Attempt) -> tuple[str, int]:
    """No model is live yet (issue 17): every attempt is `normal` with score 0, except the
    sandbox's risk test cards in test mode."""
    if not attempt.livemode and attempt.card_brand == "visa":
        return _TEST_CARD_LEVELS.get(attempt.card_last4, NO_MODEL)
    return NO_MODEL


def is_risk_test_card(attempt: Attempt) -> bool:
    """The sandbox's risk test cards keep their levels whatever a model says (test mode only)."""
    return not attempt.livemode and attempt.card_brand == "visa" and attempt.card_last4 in _TEST_CARD_LEVELS


def always_blocked(attempt: Attempt) -> bool:
    return not attempt.livemode and attempt.card_brand == "visa" and attempt.card_last4 == TEST_CARD_ALWAYS_BLOCKED


def attempt_values(attempt: Attempt, now: datetime, amount_in_usd: Decimal | None) -> dict[str, AttributeValue]:
    device = attempt.signals.get("device") or {}
    behaviour = attempt.signals.get("behaviour") or {}
    email = attempt.customer_email.lower() if attempt.customer_email else None
    domain = email.rpartition("@")[2] if email else None
    screen = device.get("screen") or {}
    intervals = behaviour.get("inter_key_interval_ms") or {}
    languages = device.get("languages") or []
    completed_ms = behaviour.get("time_to_complete_ms")
    level, score = score_and_level(attempt)
    return {
        "amount": attempt.amount,
        "currency": attempt.currency,
        "amount_in_usd": amount_in_usd,
        "card_brand": attempt.card_brand,
        "card_funding": attempt.card_funding,
        "card_fingerprint": attempt.card_fingerprint,
        "card_bin": attempt.card_bin,
        "customer": attempt.customer_id,
        "customer_age_days": None
        if attempt.customer_created is None
        else (int(now.timestamp()) - attempt.customer_created) // _DAY_S,
        "customer_email": email,
        "email_domain": domain,
        "is_disposable_email": None if domain is None else domain in blocklist,
        "ip_address": attempt.ip_address,
        "device_id": device_id(device),
        "device_timezone": device.get("timezone"),
        "device_language": languages[0] if languages else None,
        "screen_width": screen.get("width"),
        "screen_height": screen.get("height"),
        "is_pasted_card_number": bool(behaviour.get("pasted", False)) if behaviour else None,
        "typing_interval_ms_mean": _decimal(intervals.get("mean")),
        "typing_interval_ms_stddev": _decimal(intervals.get("stdev")),
        "checkout_seconds": None if completed_ms is None else Decimal(completed_ms) / 1000,
        "bot_likelihood": bot_likelihood(behaviour) if behaviour else None,
        "risk_score": score,
        "risk_level": level,
    }


def location_values(location: Location | None, device_timezone: AttributeValue, now: datetime) -> dict[str, AttributeValue]:
    """The IP address's place, and whether the browser keeps another time than that place."""
    if location is None:
        return {"ip_country": None, "ip_city": None, "ip_latitude": None, "ip_longitude": None, "is_timezone_mismatch": None}
    return {
        "ip_country": location.country,
        "ip_city": location.city,
        "ip_latitude": location.latitude,
        "ip_longitude": location.longitude,
        "is_timezone_mismatch": timezone_mismatch(device_timezone, location.time_zone, now),
    }


def timezone_mismatch(device_timezone: AttributeValue, place_timezone: str | None, now: datetime) -> bool | None:
    """Whether the two time zones keep different times now (Europe/Paris and Europe/Berlin do
    not); None when either is unknown or not a time zone."""
    if not isinstance(device_timezone, str) or place_timezone is None:
        return None
    try:
        device, place = ZoneInfo(device_timezone), ZoneInfo(place_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return now.astimezone(device).utcoffset() != now.astimezone(place).utcoffset()


def _decimal(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


# A person types a card number's 16 digits with gaps of 100 ms or more; a script fills the
# field at once or at a steady machine pace.
_HUMAN_INTERVAL_MS = 40
_HUMAN_STDEV_MS = 10
_QUICKEST_HUMAN_CHECKOUT_MS = 3_000


def bot_likelihood(behaviour: Mapping[str, Any]) -> int:
    """0 to 100: how much the card fields' behaviour looks like a script's. Each sign adds its
    weight: the number pasted (20), typed faster than a person types (40), at a machine's even
    pace (20), the form completed in under 3 seconds (20); nothing typed nor pasted (60)."""
    score = 0
    keystrokes = behaviour.get("keystroke_count", 0)
    pasted = bool(behaviour.get("pasted", False))
    intervals = behaviour.get("inter_key_interval_ms") or {}
    if pasted:
        score += 20
    if keystrokes == 0 and not pasted:
        score += 60
    if intervals and intervals.get("mean", _HUMAN_INTERVAL_MS) < _HUMAN_INTERVAL_MS:
        score += 40
    if intervals and keystrokes >= 4 and intervals.get("stdev", _HUMAN_STDEV_MS) < _HUMAN_STDEV_MS:
        score += 20
    completed = behaviour.get("time_to_complete_ms")
    if completed is not None and completed < _QUICKEST_HUMAN_CHECKOUT_MS:
        score += 20
    return min(score, 100)


def usd(amount: int, currency: str, usd_per_unit: Decimal | None) -> Decimal | None:
    """The amount in US dollars (major unit, to the cent) at `usd_per_unit` for one unit of `currency`."""
    if currency == "USD":
        return Money(amount, currency).to_decimal()
    if usd_per_unit is None:
        return None
    return (Money(amount, currency).to_decimal() * usd_per_unit).quantize(Decimal("0.01"))
