"""Pure rules of the ledger: accounts, entries, postings, holds and balances.

Amounts are integer minor units of the account's currency. A posting debits or credits
one account; an entry's postings balance per currency. Balances keep TigerBeetle's four
counters (debits and credits, posted and pending); the net figures are signed by the
account type's normal side.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Literal

from bastion.kernel.errors import InvalidRequest
from bastion.kernel.money import AMOUNT_MINOR_MAX, exponent

# The platform's own books (fee accounts and the like) are accounts of this merchant.
PLATFORM_MERCHANT_ID = "mer_" + "0" * 26
POSTINGS_MIN = 2
POSTINGS_MAX = 128
BATCH_ENTRIES_MAX = 8_000
STRIPES_MAX = 64
CURRENCIES_PER_ENTRY_MAX = 2
HOLD_TIMEOUT_S_DEFAULT = 7 * 24 * 3600
HOLD_TIMEOUT_S_MAX = 30 * 24 * 3600
# One minor unit of rounding either way between the two legs of a conversion.
FX_TOLERANCE_MINOR = 1

Direction = Literal["debit", "credit"]


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    REVENUE = "revenue"
    EXPENSE = "expense"

    @property
    def debit_normal(self) -> bool:
        return self in (AccountType.ASSET, AccountType.EXPENSE)


class EntryKind(StrEnum):
    STANDARD = "standard"
    PENDING = "pending"
    POST_PENDING = "post_pending"
    VOID_PENDING = "void_pending"
    EXPIRE_PENDING = "expire_pending"
    REVERSAL = "reversal"


RESOLUTIONS = {EntryKind.POST_PENDING: "posted", EntryKind.VOID_PENDING: "voided", EntryKind.EXPIRE_PENDING: "expired"}


class LedgerRejected(InvalidRequest):
    """An entry the ledger refuses; `code` says why, `param` names the field."""


@dataclass(frozen=True, slots=True)
class PostingDraft:
    account_id: str
    direction: Direction
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class FxQuote:
    """`rate` units of `to_currency` for one unit of `from_currency`, from `source` at `quoted_at`."""

    from_currency: str
    to_currency: str
    rate: Decimal
    source: str
    quoted_at: datetime


@dataclass(frozen=True, slots=True)
class EntryDraft:
    postings: tuple[PostingDraft, ...]
    reference: str | None = None
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    effective_at: datetime | None = None
    # A hold: the postings reserve (pending) until posted, voided or expired.
    pending: bool = False
    timeout_s: int | None = None
    fx: FxQuote | None = None


@dataclass(frozen=True, slots=True)
class AccountDraft:
    currency: str
    type: AccountType
    code: str | None = None
    name: str | None = None
    # Conversions between currencies pass through exchange accounts only.
    exchange: bool = False
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False
    # Balance rows the account is spread over, so that a hot account does not serialize its writers.
    stripes: int = 1
    metadata: Mapping[str, str] = field(default_factory=dict)

    def check(self) -> None:
        exponent(self.currency)
        if self.debits_must_not_exceed_credits and self.credits_must_not_exceed_debits:
            raise LedgerRejected(
                "An account takes at most one of debits_must_not_exceed_credits and credits_must_not_exceed_debits",
                param="flags",
                code="flags_conflict",
            )
        if not 1 <= self.stripes <= STRIPES_MAX:
            raise LedgerRejected(f"stripes must be 1 to {STRIPES_MAX}", param="stripes")
        if self.stripes > 1 and (self.debits_must_not_exceed_credits or self.credits_must_not_exceed_debits):
            raise LedgerRejected(
                "A striped account cannot carry a balance limit: the limit is checked on one balance row",
                param="stripes",
                code="stripes_with_limit",
            )


@dataclass(frozen=True, slots=True)
class Counters:
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    def __add__(self, other: "Counters") -> "Counters":
        return Counters(
            self.debits_posted + other.debits_posted,
            self.credits_posted + other.credits_posted,
            self.debits_pending + other.debits_pending,
            self.credits_pending + other.credits_pending,
        )

    def __neg__(self) -> "Counters":
        return Counters(-self.debits_posted, -self.credits_posted, -self.debits_pending, -self.credits_pending)

    def fits(self) -> bool:
        return all(0 <= value <= AMOUNT_MINOR_MAX for value in self.values())

    def values(self) -> tuple[int, int, int, int]:
        return (self.debits_posted, self.credits_posted, self.debits_pending, self.credits_pending)


def posting_counters(direction: Direction, amount_minor: int, *, pending: bool) -> Counters:
    credit = direction == "credit"
    if pending:
        return Counters(debits_pending=0 if credit else amount_minor, credits_pending=amount_minor if credit else 0)
    return Counters(debits_posted=0 if credit else amount_minor, credits_posted=amount_minor if credit else 0)


# The rejection codes of an account limit (TigerBeetle's result names), from `Limits.breach`.
LIMIT_BREACHES = frozenset({"exceeds_credits", "exceeds_debits"})


@dataclass(frozen=True, slots=True)
class Limits:
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool

    def breach(self, counters: Counters) -> str | None:
        """The code of the limit `counters` break, if any (TigerBeetle's result names)."""
        if self.debits_must_not_exceed_credits and counters.debits_posted + counters.debits_pending > counters.credits_posted:
            return "exceeds_credits"
        if self.credits_must_not_exceed_debits and counters.credits_posted + counters.credits_pending > counters.debits_posted:
            return "exceeds_debits"
        return None


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's balance; net figures are positive on the account's normal side."""

    account_type: AccountType
    counters: Counters

    @property
    def posted(self) -> int:
        c = self.counters
        return c.debits_posted - c.credits_posted if self.account_type.debit_normal else c.credits_posted - c.debits_posted

    @property
    def pending(self) -> int:
        c = self.counters
        return c.debits_pending - c.credits_pending if self.account_type.debit_normal else c.credits_pending - c.debits_pending

    @property
    def available(self) -> int:
        """Posted, less what pending holds would take out (pending inflows do not count yet)."""
        c = self.counters
        outflow = c.credits_pending if self.account_type.debit_normal else c.debits_pending
        return self.posted - outflow


def currency_totals(postings: Sequence[PostingDraft]) -> dict[str, int]:
    """Debits less credits, per currency: all zero when the postings balance."""
    totals: dict[str, int] = {}
    for posting in postings:
        sign = 1 if posting.direction == "debit" else -1
        totals[posting.currency] = totals.get(posting.currency, 0) + sign * posting.amount_minor
    return totals


def check_postings_balance(postings: Sequence[PostingDraft]) -> None:
    """Each currency's debits equal its credits; at most two currencies per entry."""
    totals = currency_totals(postings)
    if len(totals) > CURRENCIES_PER_ENTRY_MAX:
        raise LedgerRejected(
            f"An entry may span at most {CURRENCIES_PER_ENTRY_MAX} currencies, converted through exchange accounts",
            param="postings",
            code="too_many_currencies",
        )
    for currency, total in totals.items():
        if total != 0:
            raise LedgerRejected(
                f"The postings in {currency} do not balance: debits exceed credits by {total} minor units"
                if total > 0
                else f"The postings in {currency} do not balance: credits exceed debits by {-total} minor units",
                param="postings",
                code="entry_unbalanced",
            )


def check_fx(draft: EntryDraft, exchange_accounts: set[str]) -> None:
    """Two currencies only through exchange accounts, at the quoted rate (to one minor unit)."""
    currencies = {posting.currency for posting in draft.postings}
    if len(currencies) == 1:
        if draft.fx is not None:
            raise LedgerRejected("fx is only for entries that span two currencies", param="fx", code="fx_unexpected")
        return
    fx = draft.fx
    if fx is None:
        raise LedgerRejected(
            "An entry that spans two currencies needs fx: the rate, its source and time", param="fx", code="fx_required"
        )
    if {fx.from_currency, fx.to_currency} != currencies:
        raise LedgerRejected(
            f"fx converts {fx.from_currency} to {fx.to_currency}, but the postings are in {' and '.join(sorted(currencies))}",
            param="fx",
            code="fx_currency_mismatch",
        )
    through: dict[str, int] = dict.fromkeys(currencies, 0)
    for posting in draft.postings:
        if posting.account_id in exchange_accounts:
            through[posting.currency] += posting.amount_minor if posting.direction == "debit" else -posting.amount_minor
    for currency in currencies:
        if through[currency] == 0:
            raise LedgerRejected(
                f"No amount passes through an exchange account in {currency}",
                param="postings",
                code="exchange_account_required",
            )
    source_minor = abs(through[fx.from_currency])
    target_minor = abs(through[fx.to_currency])
    scale = Decimal(10) ** (exponent(fx.to_currency) - exponent(fx.from_currency))
    expected = (Decimal(source_minor) * fx.rate * scale).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    if abs(expected - target_minor) > FX_TOLERANCE_MINOR:
        raise LedgerRejected(
            f"{source_minor} {fx.from_currency} minor units at rate {fx.rate} make {expected} {fx.to_currency} minor units, "
            f"but the exchange accounts move {target_minor}",
            param="fx[rate]",
            code="fx_rate_mismatch",
        )


def first_difference(stored: EntryDraft, requested: EntryDraft) -> str | None:
    """The param of the first field in which a replay under the same reference differs;
    fields the replay leaves out (effective time, hold timeout) take the stored value."""
    fields: list[tuple[str, object, object]] = [
        ("pending", stored.pending, requested.pending),
        ("postings", len(stored.postings), len(requested.postings)),
    ]
    for index, (old, new) in enumerate(zip(stored.postings, requested.postings, strict=False)):
        fields += [
            (f"postings[{index}][account]", old.account_id, new.account_id),
            (f"postings[{index}][direction]", old.direction, new.direction),
            (f"postings[{index}][amount_minor]", old.amount_minor, new.amount_minor),
            (f"postings[{index}][currency]", old.currency, new.currency),
        ]
    fields += [
        ("description", stored.description, requested.description),
        ("metadata", dict(stored.metadata), dict(requested.metadata)),
        ("effective_at", stored.effective_at, requested.effective_at or stored.effective_at),
        ("timeout_s", stored.timeout_s, requested.timeout_s or stored.timeout_s),
        ("fx", stored.fx, requested.fx),
    ]
    return next((param for param, old, new in fields if old != new), None)


def scaled_postings(postings: Sequence[PostingDraft], amount_minor: int) -> tuple[PostingDraft, ...]:
    """The postings of a two-posting hold, posted for a smaller `amount_minor`."""
    return tuple(replace(posting, amount_minor=amount_minor) for posting in postings)


def mirrored(postings: Sequence[PostingDraft]) -> tuple[PostingDraft, ...]:
    """The postings that undo `postings`: each debit becomes a credit and back."""
    return tuple(replace(posting, direction="credit" if posting.direction == "debit" else "debit") for posting in postings)
