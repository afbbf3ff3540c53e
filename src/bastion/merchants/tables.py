from sqlalchemy import ARRAY, Boolean, Column, DateTime, ForeignKey, Index, Table, Text, func

from bastion.platform.schema import metadata

merchants = Table(
    "merchants",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Browser origins allowed to frame the vault's card fields (`frame-ancestors`).
    # The card fields' origins, per mode: test mode's here, live mode's (https only) beside.
    Column("allowed_origins", ARRAY(Text), nullable=False, server_default="{}"),
    Column("live_allowed_origins", ARRAY(Text), nullable=False, server_default="{}"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("secret_hash", Text, nullable=False, unique=True),
    Column("publishable_hash", Text, nullable=False, unique=True),
    Column("secret_hint", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
    Index("ix_api_keys_merchant_id", "merchant_id"),
)
