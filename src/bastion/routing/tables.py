"""The routing context's tables, described for Alembic (migrations write them)."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from bastion.platform.schema import metadata

# Versions of a merchant's routing rules in one mode, each immutable once made: at most one
# `live` (it decides) per merchant and mode; activating a retired version is the rollback.
routing_rules = Table(
    "routing_rules",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("description", Text),
    # [{"condition": ..., "strategy": {...}}], in the order the merchant gave them (resources.py).
    Column("rules", JSONB, nullable=False),
    # The connector account ids tried, in order, when no rule matches.
    Column("default_accounts", JSONB, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("activated_at", DateTime(timezone=True)),
    Column("retired_at", DateTime(timezone=True)),
    CheckConstraint("status IN ('draft', 'live', 'retired')", name="status"),
    CheckConstraint("version > 0", name="version"),
    CheckConstraint("max_attempts BETWEEN 1 AND 4", name="max_attempts"),
    UniqueConstraint("merchant_id", "livemode", "version"),
    Index("ix_routing_rules_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
    Index(
        "ix_routing_rules_merchant_id_livemode_live",
        "merchant_id",
        "livemode",
        unique=True,
        postgresql_where=text("status = 'live'"),
    ),
)

# Authorization outcomes per connector account and segment (currency, card brand), counted in
# minute buckets, each bucket in a few stripes (domain.OUTCOME_STRIPES); the success rates read
# the last buckets' sums and the worker prunes the older ones.
routing_outcomes = Table(
    "routing_outcomes",
    metadata,
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("card_brand", Text, nullable=False),
    Column("bucket_start", DateTime(timezone=True), nullable=False),
    Column("stripe", SmallInteger, nullable=False),
    Column("attempts", BigInteger, nullable=False),
    Column("successes", BigInteger, nullable=False),
    PrimaryKeyConstraint("merchant_id", "livemode", "account_id", "currency", "card_brand", "bucket_start", "stripe"),
    CheckConstraint("successes BETWEEN 0 AND attempts", name="successes"),
    # The worker's pruning: the oldest buckets first, across tenants.
    Index("ix_routing_outcomes_bucket_start", "bucket_start"),
)
