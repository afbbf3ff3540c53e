"""3-D Secure and connector notifications: the sandbox acquirer's payments may wait for a
challenge, and it keeps the notifications it sends until Bastion has them; Bastion keeps each
notification it took, by the connector's id, so that one sent again is not applied twice.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_OPEN_CHALLENGES = "payments_open_challenges(opened_before timestamptz, count_max integer)"
_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.add_column("payments", sa.Column("capture", sa.Boolean, nullable=False, server_default=sa.false()), schema="acquirer")
    op.alter_column("payments", "capture", server_default=None, schema="acquirer")
    op.add_column("payments", sa.Column("challenge_url", sa.Text), schema="acquirer")
    op.add_column("payments", sa.Column("return_url", sa.Text), schema="acquirer")
    # Revision 0008's name went through the naming convention twice.
    op.drop_constraint(op.f("ck_payments_ck_payments_status"), "payments", schema="acquirer", type_="check")
    op.create_check_constraint(
        "status",
        "payments",
        "status IN ('requires_action', 'authorized', 'captured', 'voided', 'declined')",
        schema="acquirer",
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("body", postgresql.JSONB, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        schema="acquirer",
    )
    op.create_index(
        "ix_notifications_due",
        "notifications",
        ["next_attempt_at"],
        postgresql_where=sa.text("delivered_at IS NULL"),
        schema="acquirer",
    )
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON acquirer.notifications TO "{roles.acquirer}"')

    op.create_table(
        "connector_notifications",
        sa.Column("connector", sa.Text, nullable=False),
        sa.Column("notification_id", sa.Text, nullable=False),
        sa.Column(
            "merchant_id",
            sa.Text,
            sa.ForeignKey("merchants.id", name="fk_connector_notifications_merchant_id_merchants"),
            nullable=False,
        ),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connector", "notification_id", name="pk_connector_notifications"),
        sa.CheckConstraint("result IN ('applied', 'ignored')", name="ck_connector_notifications_result"),
    )
    op.execute("ALTER TABLE connector_notifications ENABLE ROW LEVEL SECURITY")
    op.execute(
        f'CREATE POLICY tenant_isolation ON connector_notifications TO "{roles.app}" USING ({_TENANT}) WITH CHECK ({_TENANT})'
    )
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON connector_notifications TO "{roles.app}"')

    # The janitor's finds read the open intents: challenges waiting are open too.
    op.drop_index("ix_payment_intents_open", "payment_intents")
    op.create_index(
        "ix_payment_intents_open",
        "payment_intents",
        ["latest_charge_id"],
        postgresql_where=sa.text("status IN ('requires_capture', 'processing', 'requires_action')"),
    )
    # The janitor's find of challenges whose outcome never arrived (the API's role sees one merchant at a time).
    op.execute(
        f"""
        CREATE FUNCTION {_OPEN_CHALLENGES} RETURNS TABLE (merchant_id text, livemode boolean, id text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT c.merchant_id, c.livemode, c.id FROM payment_intents i JOIN charges c ON c.id = i.latest_charge_id
            WHERE i.status = 'requires_action' AND c.status = 'pending' AND c.updated_at < opened_before
            ORDER BY c.updated_at LIMIT count_max
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {_OPEN_CHALLENGES} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {_OPEN_CHALLENGES} TO "{roles.app}"')


def downgrade() -> None:
    op.execute("DROP FUNCTION payments_open_challenges(timestamptz, integer)")
    op.drop_index("ix_payment_intents_open", "payment_intents")
    op.create_index(
        "ix_payment_intents_open",
        "payment_intents",
        ["latest_charge_id"],
        postgresql_where=sa.text("status IN ('requires_capture', 'processing')"),
    )
    op.drop_table("connector_notifications")
    op.drop_table("notifications", schema="acquirer")
    op.execute("DELETE FROM acquirer.payments WHERE status = 'requires_action'")
    op.drop_constraint(op.f("ck_payments_status"), "payments", schema="acquirer", type_="check")
    op.create_check_constraint(
        "ck_payments_status", "payments", "status IN ('authorized', 'captured', 'voided', 'declined')", schema="acquirer"
    )
    for column in ("return_url", "challenge_url", "capture"):
        op.drop_column("payments", column, schema="acquirer")
