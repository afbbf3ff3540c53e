from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Index, Table, Text, func
from sqlalchemy.dialects.postgresql import JSONB

from bastion.platform.schema import metadata

customers = Table(
    "customers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("email", Text),
    Column("name", Text),
    Column("phone", Text),
    Column("description", Text),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("deleted_at", DateTime(timezone=True)),
    Index("ix_customers_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
)
