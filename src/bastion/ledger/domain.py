"""Pure rules of the ledger: accounts, entries, postings, holds and balances.

Amounts are integer minor units of the account's currency. A posting debits or credits
one account; an entry's postings balance per currency. Balances keep TigerBeetle's four
counters (debits and credits, posted and pending); the net figures are signed by the
account type's normal side.

The posting engine's rules live here too, free of I/O: a `Plan` is an entry ready to be
checked, and `evaluate` runs plans against the balances the posting engine locked.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Literal

from bastion.kernel.ids import new_id
from bastion.kernel.money import AMOUNT_MINOR_MAX, exponent
from bastion.ledger.errors import (
    AccountClosed,
    AccountMissing,
    AmountExceedsPending,
    BalanceOverflow,
    BatchRejected,
    CurrencyMismatch,
    EffectiveAtFuture,
    EntryAlreadyReversed,
    EntryIsHold,
    EntryNotReversible,
    EntryUnbalanced,
    ExceedsCredits,
    ExceedsDebits,
    ExchangeAccountRequired,
    FlagsConflict,
    FxCurrencyMismatch,
    FxRateMismatch,
    FxRequired,
    FxUnexpected,
    HoldAlreadyExpired,
    HoldAlreadyPosted,
    HoldAlreadyResolved,
    HoldAlreadyVoided,
    HoldExpired,
    HoldNotDue,
    LedgerRejected,
    LimitExceeded,
    PartialPostUnsupported,
    StripesWithLimit,
    TimeoutWithoutHold,
    TooManyCurrencies,
)

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
# Clocks of clients and servers drift; an entry may be stamped this far ahead of ours.
EFFECTIVE_AT_SKEW_S = 5

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
_ALREADY_RESOLVED: dict[EntryKind, type[HoldAlreadyResolved]] = {
    EntryKind.POST_PENDING: HoldAlreadyPosted,
    EntryKind.VOID_PENDING: HoldAlreadyVoided,
    EntryKind.EXPIRE_PENDING: HoldAlreadyExpired,
}


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
            raise FlagsConflict(
                "An account takes at most one of debits_must_not_exceed_credits and credits_must_not_exceed_debits",
                param="flags",
            )
        if not 1 <= self.stripes <= STRIPES_MAX:
            raise LedgerRejected(f"stripes must be 1 to {STRIPES_MAX}", param="stripes")
        if self.stripes > 1 and (self.debits_must_not_exceed_credits or self.credits_must_not_exceed_debits):
            raise StripesWithLimit(
                "A striped account cannot carry a balance limit: the limit is checked on one balance row",
                param="stripes",
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


@dataclass(frozen=True, slots=True)
class Limits:
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool

    def breach(self, counters: Counters) -> type[LimitExceeded] | None:
        """The limit `counters` break, if any (its code is TigerBeetle's result name)."""
        if self.debits_must_not_exceed_credits and counters.debits_posted + counters.debits_pending > counters.credits_posted:
            return ExceedsCredits
        if self.credits_must_not_exceed_debits and counters.credits_posted + counters.credits_pending > counters.debits_posted:
            return ExceedsDebits
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
        raise TooManyCurrencies(
            f"An entry may span at most {CURRENCIES_PER_ENTRY_MAX} currencies, converted through exchange accounts",
            param="postings",
        )
    for currency, total in totals.items():
        if total != 0:
            raise EntryUnbalanced(
                f"The postings in {currency} do not balance: debits exceed credits by {total} minor units"
                if total > 0
                else f"The postings in {currency} do not balance: credits exceed debits by {-total} minor units",
                param="postings",
            )


def check_fx(draft: EntryDraft, exchange_accounts: set[str]) -> None:
    """Two currencies only through exchange accounts, at the quoted rate (to one minor unit)."""
    currencies = {posting.currency for posting in draft.postings}
    if len(currencies) == 1:
        if draft.fx is not None:
            raise FxUnexpected("fx is only for entries that span two currencies", param="fx")
        return
    fx = draft.fx
    if fx is None:
        raise FxRequired("An entry that spans two currencies needs fx: the rate, its source and time", param="fx")
    if {fx.from_currency, fx.to_currency} != currencies:
        raise FxCurrencyMismatch(
            f"fx converts {fx.from_currency} to {fx.to_currency}, but the postings are in {' and '.join(sorted(currencies))}",
            param="fx",
        )
    through: dict[str, int] = dict.fromkeys(currencies, 0)
    for posting in draft.postings:
        if posting.account_id in exchange_accounts:
            through[posting.currency] += posting.amount_minor if posting.direction == "debit" else -posting.amount_minor
    for currency in currencies:
        if through[currency] == 0:
            raise ExchangeAccountRequired(f"No amount passes through an exchange account in {currency}", param="postings")
    source_minor = abs(through[fx.from_currency])
    target_minor = abs(through[fx.to_currency])
    scale = Decimal(10) ** (exponent(fx.to_currency) - exponent(fx.from_currency))
    expected = (Decimal(source_minor) * fx.rate * scale).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    if abs(expected - target_minor) > FX_TOLERANCE_MINOR:
        raise FxRateMismatch(
            f"{source_minor} {fx.from_currency} minor units at rate {fx.rate} make {expected} {fx.to_currency} minor units, "
            f"but the exchange accounts move {target_minor}",
            param="fx[rate]",
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


def mirrored(postings: Sequence[PostingDraft]) -> tuple[PostingDraft, ...]:
    """The postings that undo `postings`: each debit becomes a credit and back."""
    return tuple(replace(posting, direction="credit" if posting.direction == "debit" else "debit") for posting in postings)


# The posting engine's rules


@dataclass(frozen=True, slots=True)
class HeldPosting:
    """A posting of a hold as the journal keeps it, with the balance stripe it reserved."""

    account_id: str
    stripe: int
    direction: Direction
    amount_minor: int
    currency: str


@dataclass(slots=True)
class Plan:
    """An entry ready to be checked against the locked balances and written."""

    kind: EntryKind
    draft: EntryDraft
    effective_at: datetime
    entry_id: str = field(default_factory=lambda: new_id("le"))
    expires_at: datetime | None = None
    pending_entry_id: str | None = None
    reverses_entry_id: str | None = None
    # Per posting: the balance stripe it must use (resolving a hold), or None for any.
    stripes: tuple[int | None, ...] = ()
    # Pending amounts a resolved hold gives back: (account, stripe, counters to add).
    releases: tuple[tuple[str, int, Counters], ...] = ()

    def __post_init__(self) -> None:
        if not self.stripes:
            self.stripes = (None,) * len(self.draft.postings)


@dataclass(frozen=True, slots=True)
class LockedAccount:
    """What the rules need of an account, read with its locked balance rows."""

    currency: str
    exchange: bool
    closed: bool
    stripes: int
    limits: Limits

    def stripe(self, wanted: int | None, seed: int) -> int:
        """The balance row a posting uses: the one it must, or the writer's pick by `seed`."""
        return wanted if wanted is not None else seed % self.stripes


# A balance row: (account id, stripe).
BalanceKey = tuple[str, int]


def check_draft(draft: EntryDraft, moment: datetime) -> None:
    """What can be rejected before looking at any account."""
    for index, posting in enumerate(draft.postings):
        if not 0 < posting.amount_minor <= AMOUNT_MINOR_MAX:
            raise LedgerRejected("amount_minor must be 1 to 2^63-1", param=f"postings[{index}][amount_minor]")
    check_postings_balance(draft.postings)
    if draft.effective_at is not None and draft.effective_at > moment + timedelta(seconds=EFFECTIVE_AT_SKEW_S):
        raise EffectiveAtFuture("effective_at must not be in the future", param="effective_at")
    if draft.timeout_s is not None:
        if not draft.pending:
            raise TimeoutWithoutHold("timeout_s is only for holds (pending: true)", param="timeout_s")
        if not 1 <= draft.timeout_s <= HOLD_TIMEOUT_S_MAX:
            raise LedgerRejected(f"timeout_s must be 1 to {HOLD_TIMEOUT_S_MAX} seconds", param="timeout_s")


def new_plan(draft: EntryDraft, moment: datetime) -> Plan:
    if draft.pending:
        timeout_s = draft.timeout_s if draft.timeout_s is not None else HOLD_TIMEOUT_S_DEFAULT
        return Plan(
            kind=EntryKind.PENDING,
            draft=draft,
            effective_at=draft.effective_at or moment,
            expires_at=moment + timedelta(seconds=timeout_s),
        )
    return Plan(kind=EntryKind.STANDARD, draft=draft, effective_at=draft.effective_at or moment)


def release_plan(kind: EntryKind, hold_id: str, held: Sequence[HeldPosting], moment: datetime) -> Plan:
    """An entry that resolves the hold: it gives back what the hold's postings reserved,
    on the stripes that reserved it."""
    releases = tuple((p.account_id, p.stripe, -posting_counters(p.direction, p.amount_minor, pending=True)) for p in held)
    return Plan(kind=kind, draft=EntryDraft(postings=()), effective_at=moment, pending_entry_id=hold_id, releases=releases)


def already_resolved(hold_id: str, resolution: EntryKind | None) -> HoldAlreadyResolved:
    """The refusal of a second resolution of a hold (None: resolved by a request not yet seen)."""
    if resolution is None:
        return HoldAlreadyResolved(f"The hold '{hold_id}' is already resolved", param="id")
    return _ALREADY_RESOLVED[resolution](f"The hold '{hold_id}' is already {RESOLUTIONS[resolution]}", param="id")


def resolution_plan(
    kind: EntryKind,
    hold_id: str,
    held: Sequence[HeldPosting],
    fx: FxQuote | None,
    *,
    expired: bool,
    amount_minor: int | None,
    moment: datetime,
) -> Plan:
    """The entry that posts, voids or expires a hold; posted, for `amount_minor` if given
    (the rest of the reservation is released), to the stripes that held it, at its rate."""
    if kind == EntryKind.EXPIRE_PENDING and not expired:
        raise HoldNotDue(f"The hold '{hold_id}' is not due to expire yet", param="id")
    if kind != EntryKind.EXPIRE_PENDING and expired:
        raise HoldExpired(f"The hold '{hold_id}' has expired", param="id")
    released = release_plan(kind, hold_id, held, moment)
    if kind != EntryKind.POST_PENDING:
        return released
    posted = tuple(PostingDraft(p.account_id, p.direction, p.amount_minor, p.currency) for p in held)
    if amount_minor is not None:
        if amount_minor < 1:
            raise LedgerRejected("amount_minor must be positive", param="amount_minor")
        if len(posted) != 2:
            raise PartialPostUnsupported(
                "Only a hold of two postings can be posted for a smaller amount; post it in full", param="amount_minor"
            )
        if amount_minor > posted[0].amount_minor:
            raise AmountExceedsPending(
                f"amount_minor {amount_minor} exceeds the held {posted[0].amount_minor}", param="amount_minor"
            )
        posted = tuple(replace(posting, amount_minor=amount_minor) for posting in posted)
    return replace(released, draft=EntryDraft(postings=posted, fx=fx), stripes=tuple(p.stripe for p in held))


def reversal_plan(
    entry_id: str, kind: EntryKind, original: EntryDraft, *, reversed_by: str | None, description: str | None, moment: datetime
) -> Plan:
    """A new entry with every posting of `original` mirrored; the original stays as it was."""
    if kind == EntryKind.PENDING:
        raise EntryIsHold("A hold is not reversed: void it, or reverse the entry that posted it", param="id")
    if kind not in (EntryKind.STANDARD, EntryKind.POST_PENDING):
        raise EntryNotReversible(f"An entry of type {kind.value} cannot be reversed", param="id")
    if reversed_by is not None:
        raise EntryAlreadyReversed(f"The entry '{entry_id}' was already reversed by '{reversed_by}'", param="id")
    draft = EntryDraft(postings=mirrored(original.postings), description=description, fx=original.fx)
    return Plan(kind=EntryKind.REVERSAL, draft=draft, effective_at=moment, reverses_entry_id=entry_id)


def apply(
    plan: Plan, accounts: Mapping[str, LockedAccount], balances: Mapping[BalanceKey, Counters], seed: int
) -> dict[BalanceKey, Counters]:
    """The balances `plan` leaves behind, or the rejection of its first fault."""
    pending = plan.kind == EntryKind.PENDING
    new: dict[BalanceKey, Counters] = {}
    first_posting: dict[str, int] = {}
    for index, (posting, stripe) in enumerate(zip(plan.draft.postings, plan.stripes, strict=True)):
        account = accounts.get(posting.account_id)
        if account is None:
            raise AccountMissing(f"No such ledger account: '{posting.account_id}'", param=f"postings[{index}][account]")
        if account.closed:
            raise AccountClosed(f"The ledger account '{posting.account_id}' is closed", param=f"postings[{index}][account]")
        if posting.currency != account.currency:
            raise CurrencyMismatch(
                f"The ledger account '{posting.account_id}' holds {account.currency}, not {posting.currency}",
                param=f"postings[{index}][currency]",
            )
        key = (posting.account_id, account.stripe(stripe, seed))
        new[key] = new.get(key, balances[key]) + posting_counters(posting.direction, posting.amount_minor, pending=pending)
        first_posting.setdefault(posting.account_id, index)
    if plan.draft.postings:
        check_fx(plan.draft, {p.account_id for p in plan.draft.postings if accounts[p.account_id].exchange})
    for account_id, stripe, release in plan.releases:
        key = (account_id, stripe)
        new[key] = new.get(key, balances[key]) + release
    for (account_id, _), counters in new.items():
        param = f"postings[{first_posting[account_id]}]" if account_id in first_posting else None
        if not counters.fits():
            raise BalanceOverflow(f"The entry would take the balance of '{account_id}' beyond 2^63-1 minor units", param=param)
        breach = accounts[account_id].limits.breach(counters)
        if breach is not None:
            side = "debits" if breach is ExceedsCredits else "credits"
            raise breach(f"The entry would take the {side} of '{account_id}' beyond its limit (insufficient funds)", param=param)
    return new


def evaluate(
    indexed: Sequence[tuple[int, Plan]], accounts: Mapping[str, LockedAccount], balances: Mapping[BalanceKey, Counters], seed: int
) -> tuple[dict[BalanceKey, Counters], dict[int, LedgerRejected]]:
    """Each plan against the balances as the plans before it left them: the balances after
    the accepted ones, and the rejection of each refused one by its index."""
    after = dict(balances)
    refused: dict[int, LedgerRejected] = {}
    for index, plan in indexed:
        try:
            after.update(apply(plan, accounts, after, seed))
        except LedgerRejected as error:
            refused[index] = error
    return after, refused


def rejection(failures: Mapping[int, LedgerRejected], *, as_batch: bool) -> LedgerRejected:
    """What a write with `failures` raises: the first one alone, or all of them as a batch's."""
    if not as_batch:
        return next(iter(failures.values()))
    return BatchRejected(
        [
            {"index": index, "code": error.code, "message": error.message, "param": error.param}
            for index, error in sorted(failures.items())
        ]
    )
