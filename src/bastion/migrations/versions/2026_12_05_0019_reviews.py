"""Reviews: payments the risk engine sent to review, each merchant's own by row-level security.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import context, op

from bastion.platform.db import ServiceRoles

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.create_table(
        "reviews",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, sa.ForeignKey("merchants.id", name="fk_reviews_merchant_id_merchants"), nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("charge_id", sa.Text, sa.ForeignKey("charges.id", name="fk_reviews_charge_id_charges"), nullable=False),
        sa.Column(
            "payment_intent_id",
            sa.Text,
            sa.ForeignKey("payment_intents.id", name="fk_reviews_payment_intent_id_payment_intents"),
            nullable=False,
        ),
        sa.Column("decision_id", sa.Text, nullable=False),
        sa.Column("rule_id", sa.Text),
        sa.Column("open", sa.Boolean, nullable=False),
        sa.Column("closed_reason", sa.Text),
        sa.Column("closed_by", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
        sa.UniqueConstraint("charge_id", name="uq_reviews_charge_id"),
        sa.CheckConstraint("closed_reason IN ('approved', 'refunded_as_fraud')", name="closed_reason"),
        sa.CheckConstraint("open = (closed_reason IS NULL)", name="open"),
    )
    op.create_index("ix_reviews_merchant_id_livemode_id", "reviews", ["merchant_id", "livemode", "id"])
    op.execute("ALTER TABLE reviews ENABLE ROW LEVEL SECURITY")
    op.execute(f'CREATE POLICY tenant_isolation ON reviews TO "{roles.app}" USING ({_TENANT}) WITH CHECK ({_TENANT})')
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON reviews TO "{roles.app}"')


def downgrade() -> None:
    op.drop_table("reviews")
