"""The acquirer's own record, in its own schema: only the acquirer's role has grants on it."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

from bastion.platform.schema import metadata

SCHEMA = "acquirer"

payments = Table(
    "payments",
    metadata,
    Column("id", Text, primary_key=True),
    # The Bastion merchant the payment is for, and Bastion's reference (its charge id).
    Column("merchant", Text, nullable=False),
    Column("reference", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("decline_code", Text),
    Column("decline_message", Text),
    # Never the card number: the acquirer's record keeps what a statement shows.
    Column("card_last4", Text, nullable=False),
    Column("amount_captured", BigInteger, nullable=False),
    Column("amount_refunded", BigInteger, nullable=False),
    # Asked to capture at once: what a 3-D Secure challenge completed goes on to.
    Column("capture", Boolean, nullable=False),
    # The challenge page (with its single-use token) while the payment waits for it, and where
    # the cardholder's browser goes after it.
    Column("challenge_url", Text),
    Column("return_url", Text),
    # Why the cardholder will dispute it once captured (a test card's fate), or null.
    Column("dispute_reason", Text),
    # The settlement that paid its capture out.
    Column("settlement_id", Text, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("merchant", "reference"),
    CheckConstraint("status IN ('requires_action', 'authorized', 'captured', 'voided', 'declined')", name="status"),
    CheckConstraint("0 <= amount_captured AND amount_captured <= amount", name="captured"),
    CheckConstraint("0 <= amount_refunded AND amount_refunded <= amount_captured", name="refunded"),
    schema=SCHEMA,
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", Text, primary_key=True),
    Column("payment_id", Text, ForeignKey("acquirer.payments.id"), nullable=False, index=True),
    Column("reference", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("settlement_id", Text, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("payment_id", "reference"),
    CheckConstraint("amount > 0", name="amount"),
    schema=SCHEMA,
)

# The cardholders' disputes of captured payments.
disputes = Table(
    "disputes",
    metadata,
    Column("id", Text, primary_key=True),
    Column("payment_id", Text, ForeignKey("acquirer.payments.id"), nullable=False, unique=True),
    Column("amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("evidence", JSONB, nullable=False),
    Column("evidence_due_by", DateTime(timezone=True), nullable=False),
    Column("submitted_at", DateTime(timezone=True)),
    Column("settlement_id", Text, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("status IN ('needs_response', 'under_review', 'won', 'lost')", name="status"),
    CheckConstraint("amount > 0", name="amount"),
    schema=SCHEMA,
)

# Each request's answer by its Idempotency-Key: the same key gets the same answer, and the
# operation is done once.
requests = Table(
    "requests",
    metadata,
    Column("key", Text, primary_key=True),
    Column("fingerprint", Text, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    schema=SCHEMA,
)

# What the acquirer tells Bastion, signed, until Bastion answers 2xx: each change of a payment,
# refund or dispute, delivered in the background with a growing delay, up to a bound.
notifications = Table(
    "notifications",
    metadata,
    Column("id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_notifications_due", "next_attempt_at", postgresql_where="delivered_at IS NULL"),
    schema=SCHEMA,
)

# What the acquirer paid each merchant, per currency: its captures less its refunds and lost
# disputes, each item settled once (the item names its settlement).
settlements = Table(
    "settlements",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("settled_on", Date, nullable=False, index=True),
    Column("net", BigInteger, nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    schema=SCHEMA,
)
