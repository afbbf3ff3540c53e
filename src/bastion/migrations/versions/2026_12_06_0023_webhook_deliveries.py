"""Webhook deliveries and their attempts; the worker sends them and may disable an endpoint.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import context, op

from bastion.platform.db import ServiceRoles

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def _isolated(table: str, roles: ServiceRoles) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f'CREATE POLICY tenant_isolation ON {table} TO "{roles.app}" USING ({_TENANT}) WITH CHECK ({_TENANT})')
    op.execute(f'CREATE POLICY worker_all_tenants ON {table} TO "{roles.worker}" USING (true)')


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    app, worker = f'"{roles.app}"', f'"{roles.worker}"'

    op.add_column("webhook_endpoints", sa.Column("failing_since", sa.DateTime(timezone=True)))
    op.add_column("webhook_endpoints", sa.Column("disabled_reason", sa.Text))
    op.add_column("webhook_endpoints", sa.Column("recovered_at", sa.DateTime(timezone=True)))
    op.execute(f'CREATE POLICY worker_all_tenants ON webhook_endpoints TO "{roles.worker}" USING (true)')
    op.execute(f"GRANT SELECT, UPDATE (disabled, disabled_reason, failing_since, updated_at) ON webhook_endpoints TO {worker}")

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column(
            "endpoint_id",
            sa.Text,
            sa.ForeignKey("webhook_endpoints.id", name="fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            nullable=False,
        ),
        sa.Column("event_id", sa.Text, sa.ForeignKey("events.id", name="fk_webhook_deliveries_event_id_events"), nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("object_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("last_response_body", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        # The fan-out inserts each (endpoint, event) once, however often the relay hands it the event.
        sa.UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_id_event_id"),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="ck_webhook_deliveries_status"),
        sa.CheckConstraint("(status = 'pending') = (next_attempt_at IS NOT NULL)", name="ck_webhook_deliveries_next_attempt"),
    )
    op.create_index("ix_webhook_deliveries_endpoint_id_id", "webhook_deliveries", ["endpoint_id", "id"])
    # The sender's claim: each endpoint's due deliveries, soonest first.
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["endpoint_id", "next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    # Ordered endpoints: whether an earlier delivery about the same object still waits.
    op.create_index(
        "ix_webhook_deliveries_pending_object",
        "webhook_deliveries",
        ["endpoint_id", "object_id", "event_id"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    # Recovery: an endpoint's dead letters since a moment.
    op.create_index(
        "ix_webhook_deliveries_failed",
        "webhook_deliveries",
        ["endpoint_id", "created_at"],
        postgresql_where=sa.text("status = 'failed'"),
    )
    _isolated("webhook_deliveries", roles)
    op.execute(f"GRANT SELECT, UPDATE ON webhook_deliveries TO {app}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON webhook_deliveries TO {worker}")
    # Wakes the sender when the fan-out commits new deliveries (NOTIFY is sent at commit).
    op.execute(
        """
        CREATE FUNCTION webhook_deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('bastion_webhooks', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER webhook_deliveries_notify AFTER INSERT ON webhook_deliveries "
        "FOR EACH STATEMENT EXECUTE FUNCTION webhook_deliveries_notify()"
    )

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column(
            "delivery_id",
            sa.Text,
            sa.ForeignKey("webhook_deliveries.id", name="fk_webhook_attempts_delivery_id_webhook_deliveries"),
            nullable=False,
        ),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("response_body", sa.Text),
        sa.Column("succeeded", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempts"),
    )
    op.create_index("ix_webhook_attempts_delivery_id_id", "webhook_attempts", ["delivery_id", "id"])
    _isolated("webhook_attempts", roles)
    op.execute(f"GRANT SELECT ON webhook_attempts TO {app}")
    op.execute(f"GRANT SELECT, INSERT ON webhook_attempts TO {worker}")

    # The sender emits webhook_endpoint.delivery_exhausted and .disabled, and audits the disabling.
    op.execute(f"GRANT INSERT ON events TO {worker}")
    op.execute(f"GRANT INSERT ON audit_events TO {worker}")


def downgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    worker = f'"{roles.worker}"'
    op.execute(f"REVOKE INSERT ON events FROM {worker}")
    op.execute(f"REVOKE INSERT ON audit_events FROM {worker}")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.execute("DROP FUNCTION webhook_deliveries_notify()")
    op.execute("DROP POLICY worker_all_tenants ON webhook_endpoints")
    op.execute(f"REVOKE ALL ON webhook_endpoints FROM {worker}")
    for column in ("recovered_at", "disabled_reason", "failing_since"):
        op.drop_column("webhook_endpoints", column)
