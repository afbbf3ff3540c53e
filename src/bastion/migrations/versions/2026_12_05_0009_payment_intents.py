"""PaymentIntents and their charges (one per attempt), each merchant's own by row-level security.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def _tenant_columns(table: str) -> list["sa.Column[object]"]:
    return [
        sa.Column("id", sa.Text, nullable=False),
        sa.Column(
            "merchant_id", sa.Text, sa.ForeignKey("merchants.id", name=f"fk_{table}_merchant_id_merchants"), nullable=False
        ),
        sa.Column("livemode", sa.Boolean, nullable=False),
    ]


def _own_rows(table: str, app: str) -> None:
    op.create_index(f"ix_{table}_merchant_id_livemode_id", table, ["merchant_id", "livemode", "id"])
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON {table} TO {app} USING ({_TENANT}) WITH CHECK ({_TENANT})")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON {table} TO {app}")


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    app = f'"{roles.app}"'
    op.create_table(
        "payment_intents",
        *_tenant_columns("payment_intents"),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("capture_method", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, sa.ForeignKey("customers.id", name="fk_payment_intents_customer_id_customers")),
        sa.Column(
            "payment_method_id",
            sa.Text,
            sa.ForeignKey("payment_methods.id", name="fk_payment_intents_payment_method_id_payment_methods"),
        ),
        sa.Column("amount_capturable", sa.BigInteger, nullable=False),
        sa.Column("amount_received", sa.BigInteger, nullable=False),
        sa.Column("latest_charge_id", sa.Text),
        sa.Column("last_payment_error", postgresql.JSONB),
        sa.Column("next_action", postgresql.JSONB),
        sa.Column("cancellation_reason", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("statement_descriptor", sa.Text),
        sa.Column("metadata", postgresql.JSONB, nullable=False),
        sa.Column("command_in_flight", sa.Text),
        sa.Column("canceled_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_payment_intents"),
        sa.CheckConstraint(
            "status IN ('requires_payment_method', 'requires_confirmation', 'requires_action', 'processing', "
            "'requires_capture', 'canceled', 'succeeded')",
            name="ck_payment_intents_status",
        ),
        sa.CheckConstraint("capture_method IN ('automatic', 'manual')", name="ck_payment_intents_capture_method"),
        sa.CheckConstraint("amount > 0", name="ck_payment_intents_amount"),
        sa.CheckConstraint("0 <= amount_capturable AND amount_capturable <= amount", name="ck_payment_intents_amount_capturable"),
        sa.CheckConstraint("0 <= amount_received AND amount_received <= amount", name="ck_payment_intents_amount_received"),
    )
    op.create_index("ix_payment_intents_customer_id", "payment_intents", ["customer_id"])
    _own_rows("payment_intents", app)
    op.create_table(
        "charges",
        *_tenant_columns("charges"),
        sa.Column(
            "payment_intent_id",
            sa.Text,
            sa.ForeignKey("payment_intents.id", name="fk_charges_payment_intent_id_payment_intents"),
            nullable=False,
        ),
        sa.Column(
            "payment_method_id",
            sa.Text,
            sa.ForeignKey("payment_methods.id", name="fk_charges_payment_method_id_payment_methods"),
            nullable=False,
        ),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("captured", sa.Boolean, nullable=False),
        sa.Column("amount_captured", sa.BigInteger, nullable=False),
        sa.Column("amount_refunded", sa.BigInteger, nullable=False),
        sa.Column("disputed", sa.Boolean, nullable=False),
        sa.Column("outcome", postgresql.JSONB),
        sa.Column("failure_code", sa.Text),
        sa.Column("failure_message", sa.Text),
        sa.Column("decline_code", sa.Text),
        sa.Column("connector", sa.Text, nullable=False),
        sa.Column("connector_reference", sa.Text),
        sa.Column("authorization_entry_id", sa.Text),
        sa.Column("fee", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_charges"),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="ck_charges_status"),
        sa.CheckConstraint("0 <= amount_captured AND amount_captured <= amount", name="ck_charges_amount_captured"),
        sa.CheckConstraint("0 <= amount_refunded AND amount_refunded <= amount_captured", name="ck_charges_amount_refunded"),
    )
    op.create_index("ix_charges_payment_intent_id", "charges", ["payment_intent_id"])
    _own_rows("charges", app)


def downgrade() -> None:
    op.drop_table("charges")
    op.drop_table("payment_intents")
