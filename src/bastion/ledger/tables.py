"""The ledger's tables, for Alembic's drift check. The journal (entries, postings) is
append-only: the service roles hold no UPDATE or DELETE on it, and a trigger refuses both."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from bastion.platform.schema import metadata

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("currency", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("code", Text),
    Column("name", Text),
    Column("exchange", Boolean, nullable=False),
    Column("debits_must_not_exceed_credits", Boolean, nullable=False),
    Column("credits_must_not_exceed_debits", Boolean, nullable=False),
    Column("stripes", SmallInteger, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    Index("ix_ledger_accounts_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
    Index(
        "uq_ledger_accounts_merchant_id_livemode_code",
        "merchant_id",
        "livemode",
        "code",
        unique=True,
        postgresql_where=text("code IS NOT NULL"),
    ),
)

ledger_balances = Table(
    "ledger_balances",
    metadata,
    Column("account_id", Text, ForeignKey("ledger_accounts.id"), primary_key=True),
    Column("stripe", SmallInteger, primary_key=True),
    Column("merchant_id", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("currency", Text, nullable=False),
    Column("stripes", SmallInteger, nullable=False),
    Column("exchange", Boolean, nullable=False),
    Column("debits_must_not_exceed_credits", Boolean, nullable=False),
    Column("credits_must_not_exceed_debits", Boolean, nullable=False),
    Column("closed", Boolean, nullable=False),
    Column("debits_posted", BigInteger, nullable=False),
    Column("credits_posted", BigInteger, nullable=False),
    Column("debits_pending", BigInteger, nullable=False),
    Column("credits_pending", BigInteger, nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("kind", Text, nullable=False),
    Column("reference", Text),
    Column("description", Text),
    Column("metadata", JSONB, nullable=False),
    Column("effective_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("pending_entry_id", Text, ForeignKey("ledger_entries.id")),
    Column("reverses_entry_id", Text, ForeignKey("ledger_entries.id")),
    Column("fx_from", Text),
    Column("fx_to", Text),
    Column("fx_rate", Numeric),
    Column("fx_source", Text),
    Column("fx_quoted_at", DateTime(timezone=True)),
    Column("actor", Text, nullable=False),
    Column("request_id", Text),
    Index("ix_ledger_entries_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
    Index(
        "uq_ledger_entries_merchant_id_livemode_reference",
        "merchant_id",
        "livemode",
        "reference",
        unique=True,
        postgresql_where=text("reference IS NOT NULL"),
    ),
    Index(
        "uq_ledger_entries_pending_entry_id",
        "pending_entry_id",
        unique=True,
        postgresql_where=text("pending_entry_id IS NOT NULL"),
    ),
    Index(
        "uq_ledger_entries_reverses_entry_id",
        "reverses_entry_id",
        unique=True,
        postgresql_where=text("reverses_entry_id IS NOT NULL"),
    ),
)

ledger_postings = Table(
    "ledger_postings",
    metadata,
    # No foreign key to the entry: its check would lock every entry row once per posting
    # (ADR 8); the deferred trigger and `bastion ledger check` vouch for the link.
    Column("entry_id", Text, primary_key=True),
    Column("idx", SmallInteger, primary_key=True),
    Column("merchant_id", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("stripe", SmallInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("is_credit", Boolean, nullable=False),
    Column("is_pending", Boolean, nullable=False),
    Column("effective_at", DateTime(timezone=True), nullable=False),
    Index("ix_ledger_postings_account_id_effective_at_entry_id", "account_id", "effective_at", "entry_id"),
)

# Holds not yet posted, voided or expired: a work queue beside the journal, so that
# resolving a hold locks one row and the expiry job never scans old holds.
ledger_open_holds = Table(
    "ledger_open_holds",
    metadata,
    Column("entry_id", Text, ForeignKey("ledger_entries.id"), primary_key=True),
    Column("merchant_id", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_ledger_open_holds_expires_at", "expires_at"),
)
