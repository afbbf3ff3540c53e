"""The webhooks context's tables, described for Alembic (migrations write them)."""

from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
    text,
)
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
    # Since when every delivery has failed (NULL after a success): five days of it disable the endpoint.
    Column("failing_since", DateTime(timezone=True)),
    Column("disabled_reason", Text),
    # The last POST /recover, which is rate limited.
    Column("recovered_at", DateTime(timezone=True)),
    # How its deliveries are signed (signing.py); endpoints from before the choice are Standard Webhooks'.
    Column("signature_scheme", Text, nullable=False, server_default=text("'standard_webhooks'")),
    Index("ix_webhook_endpoints_merchant_id_livemode_id", "merchant_id", "livemode", "id"),
    CheckConstraint("signature_scheme IN ('standard_webhooks', 'stripe')", name="signature_scheme"),
)

# One event to one endpoint: sent by the worker's sender on a persistent schedule until it
# succeeds or is dead-lettered (`failed`). `next_attempt_at` is set exactly while pending; a
# claimed delivery's is pushed past the attempt's end, so that a crashed sender's claim lapses.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("endpoint_id", Text, ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("event_id", Text, ForeignKey("events.id"), nullable=False),
    Column("event_type", Text, nullable=False),
    # data.object.id: ordered endpoints get an object's deliveries one after another.
    Column("object_id", Text),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("last_response_body", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("endpoint_id", "event_id"),
    CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
    CheckConstraint("(status = 'pending') = (next_attempt_at IS NOT NULL)", name="next_attempt"),
    Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    Index("ix_webhook_deliveries_due", "endpoint_id", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    Index(
        "ix_webhook_deliveries_pending_object",
        "endpoint_id",
        "object_id",
        "event_id",
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_webhook_deliveries_failed", "endpoint_id", "created_at", postgresql_where=text("status = 'failed'")),
)

# Every attempt of a delivery, as the endpoint answered it (the body cut to 1 KiB).
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("merchant_id", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("delivery_id", Text, ForeignKey("webhook_deliveries.id"), nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("response_body", Text),
    Column("succeeded", Boolean, nullable=False),
    Index("ix_webhook_attempts_delivery_id_id", "delivery_id", "id"),
)
