from sqlalchemy import Boolean, CheckConstraint, Column, DateTime, Index, Integer, PrimaryKeyConstraint, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB

from bastion.platform.schema import metadata

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("merchant_id", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("key", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("status_code", Integer),
    Column("response_body", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Where a phased command stands ('started' or 'finished'), the state it resumes from, and
    # since when its current holder has it (NULL: nobody; a retry or the janitor may take it).
    Column("recovery_point", Text, nullable=False, server_default=text("'finished'")),
    Column("command", Text),
    Column("state", JSONB),
    Column("locked_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("merchant_id", "livemode", "key"),
    CheckConstraint(
        "recovery_point = 'finished' AND status_code IS NOT NULL AND response_body IS NOT NULL "
        "OR recovery_point = 'started' AND command IS NOT NULL AND state IS NOT NULL",
        name="recovery_point_known",
    ),
    Index("ix_idempotency_keys_created_at", "created_at"),
    Index("ix_idempotency_keys_started", "locked_at", postgresql_where=text("recovery_point = 'started'")),
)
