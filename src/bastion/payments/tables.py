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
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from bastion.platform.schema import metadata

payment_methods = Table(
    "payment_methods",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("type", Text, nullable=False),
    Column("customer_id", Text, ForeignKey("customers.id"), index=True),
    Column("card_brand", Text, nullable=False),
    Column("card_last4", Text, nullable=False),
    Column("card_exp_month", SmallInteger, nullable=False),
    Column("card_exp_year", SmallInteger, nullable=False),
    Column("card_funding", Text, nullable=False),
    Column("card_fingerprint", Text, nullable=False),
    # The card's first six digits, for the risk engine (:card_bin:, :card_country:); not in the
    # resource, and None for payment methods made before migration 0021.
    Column("card_bin", Text),
    Column("vault_card_id", Text, nullable=False),
    Column("signals", JSONB, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("vault_card_id"),
    CheckConstraint("card_last4 ~ '^[0-9]{4}$'", name="card_last4"),
    Index("ix_payment_methods_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
)

# What the platform charges a merchant per currency (docs/payments.md, Fees); a currency without a
# row is charged the default price. Set by operators (`bastion merchant pricing`); the API role
# only reads its own merchant's.
merchant_pricing = Table(
    "merchant_pricing",
    metadata,
    Column("merchant_id", Text, ForeignKey("merchants.id"), primary_key=True),
    Column("currency", Text, primary_key=True),
    Column("basis_points", Integer, nullable=False),
    Column("fixed_minor", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency"),
    CheckConstraint("basis_points BETWEEN 0 AND 10000", name="basis_points"),
    CheckConstraint("fixed_minor >= 0", name="fixed_minor"),
)

payment_intents = Table(
    "payment_intents",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("status", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("capture_method", Text, nullable=False),
    Column("customer_id", Text, ForeignKey("customers.id")),
    Column("payment_method_id", Text, ForeignKey("payment_methods.id")),
    # The merchant's connector account this intent's attempts go through; None: routing decides.
    Column("connector_account_id", Text, ForeignKey("connector_accounts.id")),
    Column("amount_capturable", BigInteger, nullable=False),
    Column("amount_received", BigInteger, nullable=False),
    Column("latest_charge_id", Text),
    Column("last_payment_error", JSONB),
    Column("next_action", JSONB),
    Column("cancellation_reason", Text),
    Column("description", Text),
    Column("statement_descriptor", Text),
    Column("metadata", JSONB, nullable=False),
    # The command in phases changing the intent now (a capture or a cancel waiting on the
    # acquirer): another one is refused until it finishes, or the janitor finishes it.
    Column("command_in_flight", Text),
    Column("canceled_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(
        "status IN ('requires_payment_method', 'requires_confirmation', 'requires_action', 'processing', "
        "'requires_capture', 'canceled', 'succeeded')",
        name="status",
    ),
    CheckConstraint("capture_method IN ('automatic', 'manual')", name="capture_method"),
    CheckConstraint("amount > 0", name="amount"),
    CheckConstraint("0 <= amount_capturable AND amount_capturable <= amount", name="amount_capturable"),
    CheckConstraint("0 <= amount_received AND amount_received <= amount", name="amount_received"),
    Index("ix_payment_intents_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
    Index("ix_payment_intents_customer_id", "customer_id"),
    # What the janitor looks for: authorizations to void when stale, attempts to sync.
    Index(
        "ix_payment_intents_open",
        "latest_charge_id",
        postgresql_where=text("status IN ('requires_capture', 'processing', 'requires_action')"),
    ),
)

# One row per attempt to authorize an intent, as Stripe's charges.
charges = Table(
    "charges",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("payment_intent_id", Text, ForeignKey("payment_intents.id"), nullable=False),
    Column("payment_method_id", Text, ForeignKey("payment_methods.id"), nullable=False),
    Column("status", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("captured", Boolean, nullable=False),
    Column("amount_captured", BigInteger, nullable=False),
    Column("amount_refunded", BigInteger, nullable=False),
    Column("disputed", Boolean, nullable=False),
    Column("outcome", JSONB),
    Column("failure_code", Text),
    Column("failure_message", Text),
    Column("decline_code", Text),
    Column("connector", Text, nullable=False),
    # The merchant's account at the connector; None for the sandbox acquirer, which needs none.
    Column("connector_account_id", Text, ForeignKey("connector_accounts.id")),
    # Why this attempt went where it did: the routing plan, its attempt number and, after a
    # failover, the attempt it follows and why (docs/routing.md).
    Column("routing", JSONB),
    Column("connector_reference", Text),
    # The ledger's hold of the authorization (docs/payments.md, Money in the ledger), and the fee.
    Column("authorization_entry_id", Text),
    Column("fee", BigInteger, nullable=False),
    # The connector's settlement that paid its capture out.
    Column("settlement_id", Text, ForeignKey("settlements.id")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
    CheckConstraint("0 <= amount_captured AND amount_captured <= amount", name="amount_captured"),
    CheckConstraint("0 <= amount_refunded AND amount_refunded <= amount_captured", name="amount_refunded"),
    Index("ix_charges_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
    Index("ix_charges_payment_intent_id", "payment_intent_id"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("charge_id", Text, ForeignKey("charges.id"), nullable=False),
    Column("payment_intent_id", Text, ForeignKey("payment_intents.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("failure_reason", Text),
    Column("metadata", JSONB, nullable=False),
    Column("settlement_id", Text, ForeignKey("settlements.id")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'canceled')", name="status"),
    CheckConstraint("amount > 0", name="amount"),
    Index("ix_refunds_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
    Index("ix_refunds_charge_id", "charge_id"),
    Index("ix_refunds_payment_intent_id", "payment_intent_id"),
)

# A connector's payout of a merchant's captures, less refunds and lost disputes, in one currency.
settlements = Table(
    "settlements",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("connector", Text, nullable=False),
    Column("connector_reference", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("settled_on", Date, nullable=False),
    # What the connector paid (negative: took back), and what moved from pending to available.
    Column("net", BigInteger, nullable=False),
    Column("released", BigInteger, nullable=False),
    # The ledger's entry of it (none when both are zero).
    Column("entry_id", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("connector", "connector_reference"),
    Index("ix_settlements_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
)

# A cardholder's dispute of a captured charge, opened by the connector's notification.
disputes = Table(
    "disputes",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("charge_id", Text, ForeignKey("charges.id"), nullable=False, unique=True),
    Column("payment_intent_id", Text, ForeignKey("payment_intents.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", JSONB, nullable=False),
    Column("evidence_due_by", DateTime(timezone=True), nullable=False),
    Column("submission_count", Integer, nullable=False),
    # The connector's id of the dispute, which its notifications name.
    Column("connector_reference", Text, nullable=False, unique=True),
    # The ledger's hold of the disputed funds, and the dispute fee.
    Column("hold_entry_id", Text, nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("settlement_id", Text, ForeignKey("settlements.id")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("status IN ('warning_needs_response', 'needs_response', 'under_review', 'won', 'lost')", name="status"),
    CheckConstraint("amount > 0", name="amount"),
    Index("ix_disputes_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
)

# Each connector notification Bastion has taken, by its sender (the sandbox acquirer's name, or
# a connector account's id) and the connector's own id: a notification sent again (the
# connector did not see the first answer) is answered and not applied twice.
connector_notifications = Table(
    "connector_notifications",
    metadata,
    Column("connector", Text, primary_key=True),
    Column("notification_id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("type", Text, nullable=False),
    # What it did: `applied` (it settled something) or `ignored` (Bastion knew it already).
    Column("result", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("result IN ('applied', 'ignored')", name="result"),
)

# Each movement of a merchant's balance, written in the transaction of the ledger entries that
# make it (docs/payments.md, Balance transactions): a capture with its fee, a refund, a dispute's
# fee or its loss. A charge's is `pending` until a settlement makes it `available`.
balance_transactions = Table(
    "balance_transactions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("type", Text, nullable=False),
    Column("source", Text, nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("net", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("available_on", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("type IN ('charge', 'refund', 'adjustment')", name="type"),
    CheckConstraint("status IN ('pending', 'available')", name="status"),
    CheckConstraint("net = amount - fee", name="net"),
    Index("ix_balance_transactions_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
)

# Payments the risk engine sent to review: authorized, not captured, until the merchant
# approves (the capture proceeds) or rejects (the authorization is voided, or the payment
# refunded) them (docs/risk.md, Reviews).
reviews = Table(
    "reviews",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("charge_id", Text, ForeignKey("charges.id"), nullable=False, unique=True),
    Column("payment_intent_id", Text, ForeignKey("payment_intents.id"), nullable=False),
    # The risk engine's decision that opened it, and its rule (None: the failure policy's).
    Column("decision_id", Text, nullable=False),
    Column("rule_id", Text),
    Column("open", Boolean, nullable=False),
    Column("closed_reason", Text),
    Column("closed_by", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    CheckConstraint("closed_reason IN ('approved', 'refunded_as_fraud')", name="closed_reason"),
    CheckConstraint("open = (closed_reason IS NULL)", name="open"),
    Index("ix_reviews_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
)
