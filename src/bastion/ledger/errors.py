"""Why the ledger refuses a write: one class per stable code, with the field it names.

Every refusal is an `invalid_request_error` (400) except `ReferenceInFlight`, a race the
client settles by retrying (409)."""

from typing import Any

from bastion.kernel.errors import IdempotencyInFlight, InvalidRequest, PermissionDenied


class LedgerRejected(InvalidRequest):
    """An entry or account the ledger refuses; a subclass's `code` says why, `param` names
    the field. Raised as itself for a field out of its bounds (`parameter_invalid`)."""


class AccountCodeTaken(LedgerRejected):
    """Another account of the merchant already has this `code`."""

    code = "code_taken"


class FlagsConflict(LedgerRejected):
    """Both balance limits were asked of one account."""

    code = "flags_conflict"


class StripesWithLimit(LedgerRejected):
    """A striped account cannot carry a balance limit, which is checked on one balance row."""

    code = "stripes_with_limit"


class AccountMissing(LedgerRejected):
    """A posting names an account that does not exist (for this merchant and mode)."""

    code = "account_missing"


class AccountClosed(LedgerRejected):
    """A posting names a closed account."""

    code = "account_closed"


class CurrencyMismatch(LedgerRejected):
    """A posting's currency is not its account's."""

    code = "currency_mismatch"


class BalanceOverflow(LedgerRejected):
    """The entry would take a balance counter beyond 2^63-1 minor units."""

    code = "balance_overflow"


class LimitExceeded(LedgerRejected):
    """The entry would break an account's balance limit (insufficient funds)."""


class ExceedsCredits(LimitExceeded):
    """Debits posted and pending would exceed credits posted (debits_must_not_exceed_credits)."""

    code = "exceeds_credits"


class ExceedsDebits(LimitExceeded):
    """Credits posted and pending would exceed debits posted (credits_must_not_exceed_debits)."""

    code = "exceeds_debits"


class EntryUnbalanced(LedgerRejected):
    """The postings' debits and credits differ in some currency."""

    code = "entry_unbalanced"


class TooManyCurrencies(LedgerRejected):
    """The entry spans more than two currencies."""

    code = "too_many_currencies"


class FxUnexpected(LedgerRejected):
    """`fx` on an entry in one currency."""

    code = "fx_unexpected"


class FxRequired(LedgerRejected):
    """An entry in two currencies without `fx`."""

    code = "fx_required"


class FxCurrencyMismatch(LedgerRejected):
    """`fx` converts other currencies than the postings'."""

    code = "fx_currency_mismatch"


class ExchangeAccountRequired(LedgerRejected):
    """A currency of a conversion passes through no exchange account."""

    code = "exchange_account_required"


class FxRateMismatch(LedgerRejected):
    """The exchange accounts move amounts that the quoted rate does not give (to one minor unit)."""

    code = "fx_rate_mismatch"


class EffectiveAtFuture(LedgerRejected):
    """`effective_at` is ahead of the ledger's clock by more than the allowed skew."""

    code = "effective_at_future"


class ReferenceDuplicated(LedgerRejected):
    """Two entries of one batch carry the same `reference`."""

    code = "reference_duplicated"


class ReferenceReused(LedgerRejected):
    """The `reference` names an entry written with different content."""

    code = "reference_reused"


class ReferenceInFlight(IdempotencyInFlight):
    """A concurrent request wrote an entry with this `reference` first: retry to get it."""

    code = "reference_in_flight"


class TimeoutWithoutHold(LedgerRejected):
    """`timeout_s` on an entry that is not a hold (`pending: true`)."""

    code = "timeout_without_hold"


class PartialPostUnsupported(LedgerRejected):
    """Posting part of a hold of more than two postings: post it in full."""

    code = "partial_post_unsupported"


class PlatformEntry(PermissionDenied):
    """Resolving or reversing, through the merchant's API, an entry that moves money on the
    platform's own accounts (its fees): only the context that wrote it may."""

    code = "platform_entry"


class EntryNotPending(LedgerRejected):
    """Posting or voiding an entry that is not a hold."""

    code = "entry_not_pending"


class HoldAlreadyResolved(LedgerRejected):
    """The hold was resolved by a concurrent request."""

    code = "hold_already_resolved"


class HoldAlreadyPosted(HoldAlreadyResolved):
    """Resolving a hold that an earlier request posted."""

    code = "hold_already_posted"


class HoldAlreadyVoided(HoldAlreadyResolved):
    """Resolving a hold that an earlier request voided."""

    code = "hold_already_voided"


class HoldAlreadyExpired(HoldAlreadyResolved):
    """Resolving a hold that expired (its funds went back) before this request."""

    code = "hold_already_expired"


class HoldNotDue(LedgerRejected):
    """Expiring a hold before its `expires_at`."""

    code = "hold_not_due"


class HoldExpired(LedgerRejected):
    """Posting or voiding a hold past its `expires_at`."""

    code = "hold_expired"


class AmountExceedsPending(LedgerRejected):
    """Posting a hold for more than it holds."""

    code = "amount_exceeds_pending"


class EntryIsHold(LedgerRejected):
    """Reversing a hold: void it, or reverse the entry that posted it."""

    code = "entry_is_hold"


class EntryNotReversible(LedgerRejected):
    """Reversing an entry that resolves a hold or reverses another."""

    code = "entry_not_reversible"


class EntryAlreadyReversed(LedgerRejected):
    """Reversing an entry a second time."""

    code = "entry_already_reversed"


class BatchRejected(LedgerRejected):
    """A batch with at least one rejected entry: nothing was written. `results` has one
    item per rejected entry, like TigerBeetle's per-event results."""

    code = "batch_rejected"

    def __init__(self, results: list[dict[str, Any]]) -> None:
        first = results[0]
        self.results = results
        super().__init__(
            f"Entry {first['index']} of the batch was rejected ({first['message']}); nothing was written",
            param=nested_param(f"entries[{first['index']}]", first["param"]),
        )


def nested_param(prefix: str, param: str | None) -> str:
    """`postings[0][account]` inside `entries[3]` is `entries[3][postings][0][account]`."""
    if param is None:
        return prefix
    head, bracket, rest = param.partition("[")
    return f"{prefix}[{head}]{bracket}{rest}"
