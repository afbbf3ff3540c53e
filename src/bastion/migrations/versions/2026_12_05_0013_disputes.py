"""Disputes: the sandbox acquirer's record of its cardholders' disputes, and Bastion's, each
merchant's own by row-level security.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.add_column("payments", sa.Column("dispute_reason", sa.Text), schema="acquirer")
    op.create_table(
        "disputes",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column(
            "payment_id", sa.Text, sa.ForeignKey("acquirer.payments.id", name="fk_disputes_payment_id_payments"), nullable=False
        ),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("evidence", postgresql.JSONB, nullable=False),
        sa.Column("evidence_due_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_disputes"),
        sa.UniqueConstraint("payment_id", name="uq_disputes_payment_id"),
        sa.CheckConstraint("status IN ('needs_response', 'under_review', 'won', 'lost')", name="status"),
        sa.CheckConstraint("amount > 0", name="amount"),
        schema="acquirer",
    )
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON acquirer.disputes TO "{roles.acquirer}"')

    op.create_table(
        "disputes",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column(
            "merchant_id", sa.Text, sa.ForeignKey("merchants.id", name="fk_disputes_merchant_id_merchants"), nullable=False
        ),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("charge_id", sa.Text, sa.ForeignKey("charges.id", name="fk_disputes_charge_id_charges"), nullable=False),
        sa.Column(
            "payment_intent_id",
            sa.Text,
            sa.ForeignKey("payment_intents.id", name="fk_disputes_payment_intent_id_payment_intents"),
            nullable=False,
        ),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", postgresql.JSONB, nullable=False),
        sa.Column("evidence_due_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submission_count", sa.Integer, nullable=False),
        sa.Column("connector_reference", sa.Text, nullable=False),
        sa.Column("hold_entry_id", sa.Text, nullable=False),
        sa.Column("fee", sa.BigInteger, nullable=False),
        sa.Column("metadata", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_disputes"),
        sa.UniqueConstraint("charge_id", name="uq_disputes_charge_id"),
        sa.UniqueConstraint("connector_reference", name="uq_disputes_connector_reference"),
        sa.CheckConstraint(
            "status IN ('warning_needs_response', 'needs_response', 'under_review', 'won', 'lost')", name="status"
        ),
        sa.CheckConstraint("amount > 0", name="amount"),
    )
    op.create_index("ix_disputes_merchant_id_livemode_id", "disputes", ["merchant_id", "livemode", "id"])
    op.execute("ALTER TABLE disputes ENABLE ROW LEVEL SECURITY")
    op.execute(f'CREATE POLICY tenant_isolation ON disputes TO "{roles.app}" USING ({_TENANT}) WITH CHECK ({_TENANT})')
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON disputes TO "{roles.app}"')


def downgrade() -> None:
    op.drop_table("disputes")
    op.drop_table("disputes", schema="acquirer")
    op.drop_column("payments", "dispute_reason", schema="acquirer")
