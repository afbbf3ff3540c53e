from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Index, PrimaryKeyConstraint, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB

from bastion.platform.schema import metadata

# The transactional outbox, and also the store behind GET /v1/events.
events = Table(
    "events",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, ForeignKey("merchants.id"), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("type", Text, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("request_id", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
    Index("ix_events_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
    Index("ix_events_unpublished", "id", postgresql_where=text("published_at IS NULL")),
)

# What each in-process subscriber has handled, so that redelivery has no second effect.
event_inbox = Table(
    "event_inbox",
    metadata,
    Column("subscriber", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("handled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("subscriber", "event_id"),
)
