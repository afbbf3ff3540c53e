"""The ledger: double-entry accounts, an append-only journal, holds and balances.

Other contexts post through these functions inside their own unit of work, so that a
payment's state change and its postings commit together.
"""

from bastion.ledger.domain import (
    PLATFORM_MERCHANT_ID,
    AccountDraft,
    AccountType,
    EntryDraft,
    FxQuote,
    LedgerRejected,
    PostingDraft,
)
from bastion.ledger.events import EVENT_TYPES
from bastion.ledger.service import (
    BatchRejected,
    EntryResult,
    JournalSummary,
    Violation,
    balance,
    balance_any_tenant,
    check_journal,
    create_account,
    expire_due_holds,
    post_entries,
    post_entry,
    post_pending,
    reverse_entry,
    void_pending,
)

__all__ = [
    "EVENT_TYPES",
    "PLATFORM_MERCHANT_ID",
    "AccountDraft",
    "AccountType",
    "BatchRejected",
    "EntryDraft",
    "EntryResult",
    "FxQuote",
    "JournalSummary",
    "LedgerRejected",
    "PostingDraft",
    "Violation",
    "balance",
    "balance_any_tenant",
    "check_journal",
    "create_account",
    "expire_due_holds",
    "post_entries",
    "post_entry",
    "post_pending",
    "reverse_entry",
    "void_pending",
]
