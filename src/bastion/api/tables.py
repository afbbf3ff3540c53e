from sqlalchemy import Boolean, Column, DateTime, Index, Integer, PrimaryKeyConstraint, Table, Text, func

from bastion.platform.schema import metadata

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("merchant_id", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("key", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response_body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("merchant_id", "livemode", "key"),
    Index("ix_idempotency_keys_created_at", "created_at"),
)
