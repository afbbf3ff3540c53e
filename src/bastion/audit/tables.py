from sqlalchemy import BigInteger, Boolean, Column, DateTime, Identity, Index, Table, Text, func
from sqlalchemy.dialects.postgresql import INET, JSONB, UUID

from bastion.platform.schema import metadata

# Insert-only for every service role. `insert_order` is only a hint for the sealer's
# batch order; the chain order is `audit_seals.seq`.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("insert_order", BigInteger, Identity(always=True), nullable=False, unique=True),
    Column("merchant_id", Text),
    Column("livemode", Boolean),
    Column("actor", Text, nullable=False),
    Column("action_type", Text, nullable=False),
    Column("resource_type", Text, nullable=False),
    Column("resource_id", Text, nullable=False),
    Column("before_state", JSONB),
    Column("after_state", JSONB),
    Column("ip_address", INET),
    Column("device_id", Text),
    Column("request_id", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_audit_events_merchant_id_resource_id", "merchant_id", "resource_id"),
)

# Rows waiting for the sealer; filled by a trigger on audit_events, drained by the worker.
audit_seal_queue = Table(
    "audit_seal_queue",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("insert_order", BigInteger, nullable=False, index=True),
)

audit_seals = Table(
    "audit_seals",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("prev_hash", Text, nullable=False),
    Column("row_hash", Text, nullable=False),
    Column("sealed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("chain_hash", Text, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("signature", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
