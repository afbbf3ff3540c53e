"""The vault's tables, in their own schema: only the vault's role has grants on them."""

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.schema import SchemaItem

from bastion.platform.schema import metadata

SCHEMA = "vault"


def _sealed_columns(table: str) -> list[SchemaItem]:
    """An envelope-encrypted value (see `bastion.vault.envelope`) and the index rotation scans."""
    return [
        Column("algorithm", SmallInteger, nullable=False),
        Column("key_version", Integer, ForeignKey("vault.key_versions.version"), nullable=False),
        Column("wrapped_key", LargeBinary, nullable=False),
        Column("nonce", LargeBinary, nullable=False),
        Column("ciphertext", LargeBinary, nullable=False),
        Index(f"ix_{table}_key_version", "key_version"),
    ]


key_versions = Table(
    "key_versions",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("provider", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("retired_at", DateTime(timezone=True)),
    CheckConstraint("version > 0", name="version"),
    CheckConstraint("state IN ('active', 'retiring', 'retired')", name="state"),
    Index("uq_key_versions_one_active", "state", unique=True, postgresql_where=text("state = 'active'")),
    schema=SCHEMA,
)

cards = Table(
    "cards",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    *_sealed_columns("cards"),
    Column("fingerprint", Text, nullable=False),
    Column("brand", Text, nullable=False),
    Column("last4", Text, nullable=False),
    # The number's first six digits; None for cards stored before migration 0021.
    Column("bin", Text),
    Column("exp_month", SmallInteger, nullable=False),
    Column("exp_year", SmallInteger, nullable=False),
    Column("funding", Text, nullable=False),
    Column("payment_method_id", Text, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    schema=SCHEMA,
)

cvcs = Table(
    "cvcs",
    metadata,
    Column("card_id", Text, ForeignKey("vault.cards.id", ondelete="CASCADE"), primary_key=True),
    Column("merchant_id", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    *_sealed_columns("cvcs"),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    schema=SCHEMA,
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("card_id", Text, ForeignKey("vault.cards.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("signals", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("used_at", DateTime(timezone=True)),
    schema=SCHEMA,
)
