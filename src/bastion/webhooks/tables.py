"""The webhooks context's tables, described for Alembic (migrations write them)."""

from sqlalchemy import ARRAY, Boolean, Column, DateTime, ForeignKey, Index, LargeBinary, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

from bastion.platform.schema import metadata

# A merchant's endpoints, per mode. The signing secret is sealed (secrets.py); after a rotation
# the previous one is kept, sealed, until `previous_secret_expires_at`. Deleted endpoints stay,
# marked, for the deliveries that name them.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("url", Text, nullable=False),
    Column("enabled_events", ARRAY(Text), nullable=False),
    Column("description", Text),
    Column("metadata", JSONB, nullable=False),
    Column("ordered", Boolean, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("secret_sealed", LargeBinary, nullable=False),
    Column("previous_secret_sealed", LargeBinary),
    Column("previous_secret_expires_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
    Index("ix_webhook_endpoints_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
)
