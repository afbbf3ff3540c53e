from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
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
