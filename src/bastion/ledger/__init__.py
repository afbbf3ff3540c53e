"""The ledger: double-entry accounts, an append-only journal, holds and balances.

Other contexts post through these functions inside their own unit of work, so that a
payment's state change and its postings commit together.
"""

from bastion.ledger.accounts import (
    accounts_by_code_prefix,
    balance,
    balance_any_tenant,
    create_account,
    ensure_account,
    ensure_accounts,
    every_account_by_code_prefix,
)
from bastion.ledger.domain import (
    PLATFORM_MERCHANT_ID,
    AccountDraft,
    AccountType,
    EntryDraft,
    FxQuote,
    PostingDraft,
)
from bastion.ledger.errors import BatchRejected, LedgerRejected, LimitExceeded
from bastion.ledger.events import EVENT_TYPES
from bastion.ledger.holds import expire_due_holds, post_pending, reverse_entry, void_pending
from bastion.ledger.integrity import JournalSummary, Violation, check_journal
from bastion.ledger.posting import EntryResult, post_entries, post_entry
from bastion.ledger.resources import Account, Balance, Entry

__all__ = [
    "EVENT_TYPES",
    "PLATFORM_MERCHANT_ID",
    "Account",
    "AccountDraft",
    "AccountType",
    "Balance",
    "BatchRejected",
    "Entry",
    "EntryDraft",
    "EntryResult",
    "FxQuote",
    "JournalSummary",
    "LedgerRejected",
    "LimitExceeded",
    "PostingDraft",
    "Violation",
    "accounts_by_code_prefix",
    "balance",
    "balance_any_tenant",
    "check_journal",
    "create_account",
    "ensure_account",
    "ensure_accounts",
    "every_account_by_code_prefix",
    "expire_due_holds",
    "post_entries",
    "post_entry",
    "post_pending",
    "reverse_entry",
    "void_pending",
]
