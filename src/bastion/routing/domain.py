"""Routing's rules that need no database: the limits, the attributes a condition may name, the
payment a plan is made for and the plan itself, and each strategy's order of candidates, drawn
deterministically from the payment's id (docs/routing.md)."""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import accumulate
from typing import Any, Final, Literal

from bastion.risk import Attribute, AttributeValue, ValueType

RULES_MAX: Final = 50
# Accounts in the default list, in a strategy's list and in a volume split.
ACCOUNTS_PER_LIST_MAX: Final = 8
MAX_ATTEMPTS_MIN: Final = 1
MAX_ATTEMPTS_MAX: Final = 4
MAX_ATTEMPTS_DEFAULT: Final = 2
EXPLORATION_PERCENT_MAX: Final = 50
EXPLORATION_PERCENT_DEFAULT: Final = 5
SPLIT_PERCENT_TOTAL: Final = 100

# Success rates: outcomes counted per minute bucket, read over the last 30 buckets (the current
# one included); below 20 outcomes an account's rate is unknown and it keeps its place.
OUTCOME_BUCKET: Final = timedelta(minutes=1)
SUCCESS_RATE_WINDOW: Final = timedelta(minutes=30)
SUCCESS_RATE_SAMPLE_MIN: Final = 20
# Rows per bucket of one account and segment, each payment's outcome added to one of them at
# random: concurrent payments of one segment do not all wait for one row lock (the ledger's
# striped balances, ADR 8, for the same reason).
OUTCOME_STRIPES: Final = 8
# The worker's pruning deletes at most this many rows per transaction.
PRUNE_BATCH_MAX: Final = 1_000


class RoutingRulesStatus(StrEnum):
    DRAFT = "draft"
    LIVE = "live"  # decides every payment of the merchant in its mode
    RETIRED = "retired"


class Strategy(StrEnum):
    PRIORITY = "priority"
    VOLUME_SPLIT = "volume_split"
    SUCCESS_RATE = "success_rate"


CATALOGUE: Final[Mapping[str, Attribute]] = {
    attribute.name: attribute
    for attribute in (
        Attribute("amount", ValueType.NUMBER, "The amount, in the currency's minor unit (2000 for 20.00 EUR)."),
        Attribute("currency", ValueType.STRING, "The three-letter ISO currency code."),
        Attribute("card_brand", ValueType.STRING, "visa, mastercard, amex, discover, jcb, diners, unionpay or unknown."),
        Attribute("card_country", ValueType.STRING, "The issuing country (ISO 3166-1 alpha-2), when known."),
        Attribute("capture_method", ValueType.STRING, "automatic or manual."),
    )
}
# Where a refusal of an unknown attribute sends the merchant.
CATALOGUE_LISTED_AT: Final = "docs/routing.md, Conditions"


@dataclass(frozen=True, slots=True)
class RoutedPayment:
    """What routing knows of the payment it plans for."""

    payment_id: str
    amount: int
    currency: str
    card_brand: str
    card_country: str | None
    capture_method: Literal["automatic", "manual"]

    def values(self) -> dict[str, AttributeValue]:
        """The values a condition names (CATALOGUE)."""
        return {
            "amount": self.amount,
            "currency": self.currency,
            "card_brand": self.card_brand,
            "card_country": self.card_country,
            "capture_method": self.capture_method,
        }


@dataclass(frozen=True, slots=True)
class RoutingPlan:
    """Where to send a payment: `candidates` in order, each tried after the one before failed in
    a way that allows failover, at most `max_attempts` of them. No live routing rules: no
    candidate, and the caller sends the payment where it would without routing."""

    ruleset_id: str | None
    # The rule that matched, by its index in the ruleset; None for the default list (or no ruleset).
    rule_index: int | None
    strategy: Strategy | None
    candidates: tuple[str, ...]
    max_attempts: int
    # What decided, to be recorded with the payment's charges (docs/routing.md, Plans).
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rate:
    """An account's authorizations in one segment over the window."""

    successes: int
    attempts: int

    @property
    def rate(self) -> float | None:
        """The share of successes; None (unknown) below the minimum sample."""
        if self.attempts < SUCCESS_RATE_SAMPLE_MIN:
            return None
        return self.successes / self.attempts


NO_OUTCOMES: Final = Rate(0, 0)


def draw(payment_id: str, purpose: str, out_of: int) -> int:
    """A number in [0, out_of), the same for the same payment and purpose in every process (a
    resumed command, a replay), uniform over payments; each purpose draws apart from the others."""
    digest = hashlib.sha256(f"{purpose}:{payment_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") * out_of >> 64


def split_order(splits: Sequence[tuple[str, int]], payment_id: str) -> tuple[list[str], dict[str, Any]]:
    """The account the payment's draw falls on, then the others by share (ties in their order).
    `splits` are (account, percent) of the accounts that can take payments: a disabled one's
    share goes to the others in proportion."""
    total = sum(percent for _, percent in splits)
    point = draw(payment_id, "split", total)
    bounds = zip((account for account, _ in splits), accumulate(percent for _, percent in splits), strict=True)
    picked = next(account for account, below in bounds if point < below)
    by_share = sorted((account for account, _ in splits if account != picked), key=dict(splits).__getitem__, reverse=True)
    return [picked, *by_share], {"draw": point, "out_of": total, "shares": dict(splits)}


def rank_by_success(accounts: Sequence[str], rates: Mapping[str, Rate]) -> list[str]:
    """The accounts with a known rate sorted by it, highest first (ties in their order), in the
    places such accounts held; an account whose rate is unknown keeps its place."""
    known = [index for index, account in enumerate(accounts) if rates.get(account, NO_OUTCOMES).rate is not None]

    def best_first(index: int) -> tuple[float, int]:
        rate = rates[accounts[index]].rate
        return (-(rate or 0.0), index)

    order = list(accounts)
    for place, index in zip(known, sorted(known, key=best_first), strict=True):
        order[place] = accounts[index]
    return order


def explore(ranked: Sequence[str], payment_id: str, exploration_percent: int) -> tuple[list[str], dict[str, Any]]:
    """In `exploration_percent` of payments, another account than the best, drawn uniformly, goes
    first: an account ranked low still gets outcomes that could lift it."""
    point = draw(payment_id, "explore", 100)
    if point >= exploration_percent or len(ranked) < 2:
        return list(ranked), {"exploration": False, "exploration_draw": point}
    chosen = ranked[1 + draw(payment_id, "explore_pick", len(ranked) - 1)]
    return [chosen, *(account for account in ranked if account != chosen)], {"exploration": True, "exploration_draw": point}


def bucket_of(moment: datetime) -> datetime:
    """The start of the bucket `moment` counts in."""
    seconds = OUTCOME_BUCKET.total_seconds()
    return datetime.fromtimestamp(moment.timestamp() // seconds * seconds, UTC)


def window_start(now: datetime) -> datetime:
    """The oldest bucket the success rates read at `now`: the window's buckets end with the current one."""
    return bucket_of(now) - SUCCESS_RATE_WINDOW + OUTCOME_BUCKET
