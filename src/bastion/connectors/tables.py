"""The connectors context's tables, described for Alembic (migrations write them)."""

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Index, LargeBinary, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

from bastion.platform.schema import metadata

# A merchant's accounts at processors, per mode. The credentials are sealed (secrets.py) with
# what sealed them named beside them; `credentials_masked` is what answers show of them, so that
# reads never open the seal. Disabled accounts stay, readable.
connector_accounts = Table(
    "connector_accounts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("connector", Text, nullable=False),
    Column("label", Text),
    Column("metadata", JSONB, nullable=False),
    Column("base_url", Text, nullable=False),
    Column("credentials_masked", JSONB, nullable=False),
    Column("credentials_sealed", LargeBinary, nullable=False),
    Column("data_key_sealed", LargeBinary, nullable=False),
    Column("algorithm", Text, nullable=False),
    Column("key_purpose", Text, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("disabled_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_connector_accounts_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
)
