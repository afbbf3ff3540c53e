"""The journal check: every invariant of the ledger over the whole journal, all tenants,
as the operator's `bastion ledger check` runs it."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from bastion.ledger import integrity_repository, repository
from bastion.ledger.domain import POSTINGS_MAX, POSTINGS_MIN, EntryKind
from bastion.platform.db import AnyRow, Connection


@dataclass(frozen=True, slots=True)
class Violation:
    """The first broken invariant of the journal: its name, where, and a one-line message."""

    invariant: str
    message: str
    entry: str | None = None
    account: str | None = None


@dataclass(frozen=True, slots=True)
class JournalSummary:
    """What a check that found nothing wrong looked at."""

    entries: int
    postings: int
    accounts: int


def _net(net_minor: int) -> str:
    return f"debits exceed credits by {net_minor}" if net_minor > 0 else f"credits exceed debits by {-net_minor}"


def _unbalanced_entry(row: AnyRow) -> Violation:
    entry_id = row["entry_id"]
    message = f"entry {entry_id} does not balance in {row['currency']}: {_net(int(row['net_minor']))} minor units"
    return Violation("entry_balanced", message, entry=entry_id)


def _posting_count(row: AnyRow) -> Violation:
    entry_id, kind = row["entry_id"], EntryKind(row["kind"])
    wanted = "none" if kind in (EntryKind.VOID_PENDING, EntryKind.EXPIRE_PENDING) else f"{POSTINGS_MIN} to {POSTINGS_MAX}"
    message = f"entry {entry_id} of type {kind.value} has {row['postings']} postings, not {wanted}"
    return Violation("posting_count", message, entry=entry_id)


def _posting_account(row: AnyRow) -> Violation:
    entry_id, account_id = row["entry_id"], row["account_id"]
    posting = f"posting {row['idx']} of entry {entry_id}"
    if row["orphan"]:
        return Violation("posting_entry", f"{posting} belongs to no entry: entry {entry_id} does not exist", entry_id)
    if row["other_tenant"]:
        return Violation("posting_entry", f"{posting} carries another merchant or mode than its entry", entry_id)
    if row["account_currency"] is None:
        return Violation("posting_account", f"{posting} names account {account_id}, which does not exist", entry_id, account_id)
    message = f"{posting} is in {row['currency']}, but its account {account_id} holds {row['account_currency']}"
    return Violation("posting_currency", message, entry_id, account_id)


_COUNTER_NAMES = ("debits_posted", "credits_posted", "debits_pending", "credits_pending")


def _stored_balance(row: AnyRow) -> Violation:
    account_id = row["account_id"]
    name = next(name for name in _COUNTER_NAMES if row[f"stored_{name}"] != row[f"journal_{name}"])
    stored, summed = int(row[f"stored_{name}"]), int(row[f"journal_{name}"])
    message = f"account {account_id} stores {name} {stored}, but its postings sum to {summed}"
    return Violation("balance_matches_journal", message, account=account_id)


def _balance_limit(row: AnyRow) -> Violation:
    account_id, counters = row["account_id"], repository.counters_of(row)
    if row["debits_must_not_exceed_credits"]:
        flag, outflow, inflow = "debits_must_not_exceed_credits", "debits", "credits"
        used, limit = counters.debits_posted + counters.debits_pending, counters.credits_posted
    else:
        flag, outflow, inflow = "credits_must_not_exceed_debits", "credits", "debits"
        used, limit = counters.credits_posted + counters.credits_pending, counters.debits_posted
    message = (
        f"account {account_id} (stripe {row['stripe']}) breaks {flag}: "
        f"{outflow} posted and pending {used} exceed {inflow} posted {limit}"
    )
    return Violation("balance_limit", message, account=account_id)


def _open_hold(row: AnyRow) -> Violation:
    entry_id = row["entry_id"]
    if row["listed"] and row["expires_at"] is None:
        message = f"open hold {entry_id} is not a hold: its entry is of type {row['kind']}"
    elif row["listed"] and row["resolved_by"] is not None:
        message = f"hold {entry_id} was resolved by {row['resolved_by']} but is still listed as open"
    elif row["listed"]:
        message = f"open hold {entry_id} expires at {row['listed_expires_at']}, but its entry at {row['expires_at']}"
    else:
        message = f"hold {entry_id} is unresolved but missing from the open holds"
    return Violation("open_holds", message, entry=entry_id)


def _entry_link(row: AnyRow) -> Violation:
    entry_id, target_id, kind = row["entry_id"], row["target_id"], EntryKind(row["kind"])
    wanted = "a standard or post_pending entry" if kind == EntryKind.REVERSAL else "a hold"
    if row["target_kind"] is None:
        found = "which does not exist"
    elif row["other_tenant"]:
        found = "an entry of another tenant"
    else:
        found = f"an entry of type {row['target_kind']}"
    message = f"entry {entry_id} of type {kind.value} points to {target_id}, {found}, not {wanted} of its tenant"
    return Violation("entry_link", message, entry=entry_id)


# In the order they are checked: each query's first offending row, and what it says.
_JOURNAL_CHECKS: tuple[tuple[Callable[[Connection], Awaitable[AnyRow | None]], Callable[[AnyRow], Violation]], ...] = (
    (integrity_repository.first_unbalanced_entry, _unbalanced_entry),
    (
        partial(integrity_repository.first_entry_with_wrong_posting_count, postings_min=POSTINGS_MIN, postings_max=POSTINGS_MAX),
        _posting_count,
    ),
    (integrity_repository.first_posting_off_its_account, _posting_account),
    (integrity_repository.first_balance_off_the_journal, _stored_balance),
    (integrity_repository.first_balance_over_its_limit, _balance_limit),
    (integrity_repository.first_open_hold_mismatch, _open_hold),
    (integrity_repository.first_bad_entry_link, _entry_link),
)


async def check_journal(connection: Connection) -> Violation | JournalSummary:
    """Every invariant of the ledger over the whole journal, all tenants: the first
    violation, or a summary of what was checked. Run it as the owner, in one
    repeatable-read snapshot, so that writes committed meanwhile cannot look like faults."""
    for find, describe in _JOURNAL_CHECKS:
        row = await find(connection)
        if row is not None:
            return describe(row)
    size = await integrity_repository.journal_size(connection)
    return JournalSummary(entries=int(size["entries"]), postings=int(size["postings"]), accounts=int(size["accounts"]))
