"""Refunds of captured charges, each merchant's own by row-level security.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    app = f'"{roles.app}"'
    op.create_table(
        "refunds",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, sa.ForeignKey("merchants.id", name="fk_refunds_merchant_id_merchants"), nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("charge_id", sa.Text, sa.ForeignKey("charges.id", name="fk_refunds_charge_id_charges"), nullable=False),
        sa.Column(
            "payment_intent_id",
            sa.Text,
            sa.ForeignKey("payment_intents.id", name="fk_refunds_payment_intent_id_payment_intents"),
            nullable=False,
        ),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("failure_reason", sa.Text),
        sa.Column("metadata", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_refunds"),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'canceled')", name="ck_refunds_status"),
        sa.CheckConstraint("amount > 0", name="ck_refunds_amount"),
    )
    op.create_index("ix_refunds_merchant_id_livemode_id", "refunds", ["merchant_id", "livemode", "id"])
    op.create_index("ix_refunds_charge_id", "refunds", ["charge_id"])
    op.create_index("ix_refunds_payment_intent_id", "refunds", ["payment_intent_id"])
    op.execute("ALTER TABLE refunds ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON refunds TO {app} USING ({_TENANT}) WITH CHECK ({_TENANT})")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON refunds TO {app}")


def downgrade() -> None:
    op.drop_table("refunds")
