from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from bastion.platform.schema import metadata

# Versions of a merchant's rules, each immutable once made: at most one `live` (it decides) and
# one `shadow` (it runs beside and decides nothing) per merchant and mode.
risk_rulesets = Table(
    "risk_rulesets",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("description", Text),
    # [{"id": ..., "rule": ...}], in the order the merchant gave them.
    Column("rules", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("activated_at", DateTime(timezone=True)),
    Column("retired_at", DateTime(timezone=True)),
    CheckConstraint("status IN ('draft', 'live', 'shadow', 'retired')", name="status"),
    CheckConstraint("version > 0", name="version"),
    UniqueConstraint("merchant_id", "livemode", "version"),
    Index("ix_risk_rulesets_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
    Index(
        "ix_risk_rulesets_merchant_id_livemode_status",
        "merchant_id",
        "livemode",
        "status",
        unique=True,
        postgresql_where=text("status IN ('live', 'shadow')"),
    ),
)

# Lists a rule names as `@alias`, each of one kind of value.
risk_lists = Table(
    "risk_lists",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("alias", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("item_type", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(
        "item_type IN ('card_fingerprint', 'email', 'email_domain', 'ip', 'device_id', 'card_bin', 'country')",
        name="item_type",
    ),
    UniqueConstraint("merchant_id", "livemode", "alias"),
    Index("ix_risk_lists_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
)

risk_list_items = Table(
    "risk_list_items",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("list_id", Text, ForeignKey("risk_lists.id", ondelete="CASCADE"), nullable=False),
    # Normalized for its list's kind (lower-case emails, canonical addresses and ranges).
    Column("value", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("list_id", "value"),
    Index("ix_risk_list_items_merchant_id_livemode_list_id_id", "merchant_id", "livemode", "list_id", "id"),
)

# What each merchant asks of an assessment, per mode: its time budget and what happens past it.
risk_settings = Table(
    "risk_settings",
    metadata,
    Column("merchant_id", Text, ForeignKey("merchants.id"), primary_key=True),
    Column("livemode", Boolean, primary_key=True),
    Column("budget_ms", Integer, nullable=False),
    Column("failure_policy", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("budget_ms BETWEEN 1 AND 10000", name="budget_ms"),
    CheckConstraint("failure_policy IN ('fail_open', 'fail_closed')", name="failure_policy"),
)

# Every decision, with what it was made from: the rulesets' versions and the exact attribute
# values, so that a replay computes it again (docs/risk.md, Decisions).
risk_decisions = Table(
    "risk_decisions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    # The attempt assessed: a payment's charge, one decision each.
    Column("attempt_id", Text, nullable=False, unique=True),
    Column("payment_intent_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("risk_score", Integer, nullable=False),
    Column("risk_level", Text, nullable=False),
    Column("rule_id", Text),
    Column("reasons", JSONB, nullable=False),
    Column("ruleset_id", Text, ForeignKey("risk_rulesets.id")),
    Column("shadow", JSONB),
    Column("model_version", Text),
    Column("attributes", JSONB, nullable=False),
    Column("model", JSONB),
    Column("duration_ms", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("action IN ('allow', 'block', 'review', 'request_3ds')", name="action"),
    CheckConstraint("risk_level IN ('normal', 'elevated', 'highest', 'not_assessed')", name="risk_level"),
    CheckConstraint("risk_score BETWEEN 0 AND 100", name="risk_score"),
    Index("ix_risk_decisions_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
)

# Velocity (docs/risk.md, Velocity). A subject is who an attempt is counted for: `card:<fingerprint>`,
# `customer:<id>`, `email:<address>`, `ip:<address>`, `device:<id>`. Its row holds the all-time
# counts and is locked by every attempt that counts, so that concurrent attempts count in turn.
risk_velocity_subjects = Table(
    "risk_velocity_subjects",
    metadata,
    Column("merchant_id", Text, ForeignKey("merchants.id"), primary_key=True),
    Column("livemode", Boolean, primary_key=True),
    Column("subject", Text, primary_key=True),
    Column("attempts", BigInteger, nullable=False),
    Column("charges", BigInteger, nullable=False),
    Column("declines", BigInteger, nullable=False),
    Column("amount_in_usd", Numeric(20, 2), nullable=False),
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
)

# One row per attempt and subject: the windowed counts. Pruned 8 days after (a day past the
# longest window) by the next attempts on the subject (velocity.PRUNED_AFTER).
risk_velocity_events = Table(
    "risk_velocity_events",
    metadata,
    Column("merchant_id", Text, ForeignKey("merchants.id"), primary_key=True),
    Column("livemode", Boolean, primary_key=True),
    Column("subject", Text, primary_key=True),
    Column("attempt_id", Text, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    # None when no exchange rate was loaded for the attempt's currency.
    Column("amount_in_usd", Numeric(20, 2)),
    # pending until the attempt's outcome: succeeded or declined.
    Column("outcome", Text, nullable=False),
    CheckConstraint("outcome IN ('pending', 'succeeded', 'declined')", name="outcome"),
    Index("ix_risk_velocity_events_merchant_id_livemode_subject_at", "merchant_id", "livemode", "subject", "at"),
    Index("ix_risk_velocity_events_attempt_id", "attempt_id"),
)

# The cards seen with an IP address, a device or a customer, and when last: distinct cards per window.
risk_velocity_cards = Table(
    "risk_velocity_cards",
    metadata,
    Column("merchant_id", Text, ForeignKey("merchants.id"), primary_key=True),
    Column("livemode", Boolean, primary_key=True),
    Column("subject", Text, primary_key=True),
    Column("card_fingerprint", Text, primary_key=True),
    Column("last_at", DateTime(timezone=True), nullable=False),
)

# What one unit of each currency is worth in US dollars, for `:amount_in_usd:`: platform-wide,
# loaded by `bastion risk rates load`.
risk_usd_rates = Table(
    "risk_usd_rates",
    metadata,
    Column("currency", Text, primary_key=True),
    Column("usd_per_unit", Numeric(20, 10), nullable=False),
    Column("as_of", DateTime(timezone=True), nullable=False),
    CheckConstraint("usd_per_unit > 0", name="usd_per_unit"),
)

# Where each card, customer and device was last located, for impossible travel.
risk_locations = Table(
    "risk_locations",
    metadata,
    Column("merchant_id", Text, ForeignKey("merchants.id"), primary_key=True),
    Column("livemode", Boolean, primary_key=True),
    Column("subject", Text, primary_key=True),
    Column("latitude", Numeric(9, 6), nullable=False),
    Column("longitude", Numeric(9, 6), nullable=False),
    Column("accuracy_km", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# Issuers' card number ranges and their countries, for `:card_country:`: platform-wide, loaded by
# `bastion risk iin load`. A range is its first and last prefix padded to 8 digits (424242 to
# 424242 is 42424200 to 42424299).
risk_iin_ranges = Table(
    "risk_iin_ranges",
    metadata,
    Column("low", BigInteger, primary_key=True),
    Column("high", BigInteger, primary_key=True),
    Column("country", Text, nullable=False),
    CheckConstraint("low <= high", name="range"),
)

# Labelled transactions the fraud models learn from (docs/risk-ml.md, Data): imported files and
# Bastion's own payments, one row each, with the customer and terminal they are counted for.
risk_history_imports = Table(
    "risk_history_imports",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("file_sha256", Text, nullable=False),
    Column("file_name", Text, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("frauds", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("merchant_id", "livemode", "file_sha256"),
)

risk_history = Table(
    "risk_history",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    # No foreign keys (ADR 32): an import checks its merchant once, by its row in risk_history_imports.
    Column("merchant_id", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("source", Text, nullable=False),
    # The file's TRANSACTION_ID, or the payment's charge (attempt) id.
    Column("transaction_id", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("customer_key", Text, nullable=False),
    Column("terminal_key", Text, nullable=False),
    # Stored, not an index expression: under row-level security the planner may not apply a
    # function that is not leakproof to the rows before the policy, so it could not use the index.
    Column("customer_hash", BigInteger, Computed("hashtextextended(customer_key, 0)", persisted=True), nullable=False),
    Column("terminal_hash", BigInteger, Computed("hashtextextended(terminal_key, 0)", persisted=True), nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("fraud", Boolean, nullable=False),
    Column("fraud_scenario", SmallInteger),
    # The engine's signals of a payment's attempt (features.SIGNALS); none for imported rows.
    Column("signals", JSONB),
    Column("import_id", Text),
    Column("labelled_at", DateTime(timezone=True)),
    CheckConstraint("source IN ('import', 'payment')", name="source"),
    CheckConstraint("amount >= 0 AND amount <> 'NaN'", name="amount"),
    CheckConstraint(
        "length(transaction_id) BETWEEN 1 AND 200 AND length(customer_key) BETWEEN 1 AND 200 "
        "AND length(terminal_key) BETWEEN 1 AND 200",
        name="keys",
    ),
    Index("ix_risk_history_customer", "customer_hash", "occurred_at"),
    Index("ix_risk_history_terminal", "terminal_hash", "occurred_at"),
    Index(
        "ix_risk_history_merchant_id_livemode_payment",
        "merchant_id",
        "livemode",
        "transaction_id",
        unique=True,
        postgresql_where=text("source = 'payment'"),
    ),
)

# The platform's model versions; at most one champion (it scores) and one challenger (it scores
# in shadow). The model itself is a file in the models directory, checked against `sha256`.
risk_models = Table(
    "risk_models",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("status", Text, nullable=False),
    Column("file_name", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("trained_since", DateTime(timezone=True), nullable=False),
    Column("trained_until", DateTime(timezone=True), nullable=False),
    Column("delay_days", Integer, nullable=False),
    Column("features", JSONB, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("metrics", JSONB, nullable=False),
    # Per feature, the training window's bins and shares: what drift is measured against.
    Column("reference", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("championed_at", DateTime(timezone=True)),
    CheckConstraint("status IN ('candidate', 'champion', 'challenger', 'retired')", name="status"),
    CheckConstraint("version > 0", name="version"),
    Index("ix_risk_models_status", "status", unique=True, postgresql_where=text("status IN ('champion', 'challenger')")),
)

# Each promotion, with the champion it replaced: a rollback undoes the latest one not undone.
risk_model_promotions = Table(
    "risk_model_promotions",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("version", Integer, ForeignKey("risk_models.version"), nullable=False),
    Column("replaced", Integer, ForeignKey("risk_models.version")),
    Column("promoted_at", DateTime(timezone=True), nullable=False),
    Column("rolled_back_at", DateTime(timezone=True)),
)

# The population stability index of each feature, per model and day, live against training.
risk_model_drift = Table(
    "risk_model_drift",
    metadata,
    Column("version", Integer, ForeignKey("risk_models.version"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("feature", Text, primary_key=True),
    Column("psi", Float, nullable=False),
    Column("scored", BigInteger, nullable=False),
    Column("computed_at", DateTime(timezone=True), nullable=False),
)
