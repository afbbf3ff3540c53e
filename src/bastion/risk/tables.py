from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
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
