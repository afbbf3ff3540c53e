"""The sandbox acquirer's own record: the `acquirer` schema, on which only the acquirer's role
has grants (payments, refunds, and each request's answer by its Idempotency-Key).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TABLES = ("payments", "refunds", "requests")


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    acquirer = f'"{roles.acquirer}"'
    op.execute("CREATE SCHEMA acquirer")
    op.execute("REVOKE ALL ON SCHEMA acquirer FROM PUBLIC")
    op.execute(f"GRANT USAGE ON SCHEMA acquirer TO {acquirer}")
    op.create_table(
        "payments",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("merchant", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("decline_code", sa.Text),
        sa.Column("decline_message", sa.Text),
        sa.Column("card_last4", sa.Text, nullable=False),
        sa.Column("amount_captured", sa.BigInteger, nullable=False),
        sa.Column("amount_refunded", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_payments"),
        sa.UniqueConstraint("merchant", "reference", name="uq_payments_merchant_reference"),
        sa.CheckConstraint("status IN ('authorized', 'captured', 'voided', 'declined')", name="ck_payments_status"),
        sa.CheckConstraint("0 <= amount_captured AND amount_captured <= amount", name="ck_payments_captured"),
        sa.CheckConstraint("0 <= amount_refunded AND amount_refunded <= amount_captured", name="ck_payments_refunded"),
        schema="acquirer",
    )
    op.create_table(
        "refunds",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column(
            "payment_id", sa.Text, sa.ForeignKey("acquirer.payments.id", name="fk_refunds_payment_id_payments"), nullable=False
        ),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_refunds"),
        sa.UniqueConstraint("payment_id", "reference", name="uq_refunds_payment_id_reference"),
        sa.CheckConstraint("amount > 0", name="ck_refunds_amount"),
        schema="acquirer",
    )
    op.create_index("ix_refunds_payment_id", "refunds", ["payment_id"], schema="acquirer")
    op.create_table(
        "requests",
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("body", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_requests"),
        schema="acquirer",
    )
    for table in _TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE ON acquirer.{table} TO {acquirer}")


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table, schema="acquirer")
    op.execute("DROP SCHEMA acquirer")
