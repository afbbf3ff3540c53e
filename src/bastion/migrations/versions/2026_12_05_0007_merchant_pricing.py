"""Pricing per merchant and currency: the platform's fee in basis points plus a fixed amount
in minor units (docs/payments.md, Fees). Operators set it as the owner; the API role reads only
its own merchant's rows, and writes none.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import context, op

from bastion.platform.db import ServiceRoles

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.create_table(
        "merchant_pricing",
        sa.Column(
            "merchant_id",
            sa.Text,
            sa.ForeignKey("merchants.id", name="fk_merchant_pricing_merchant_id_merchants"),
            nullable=False,
        ),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("basis_points", sa.Integer, nullable=False),
        sa.Column("fixed_minor", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "currency", name="pk_merchant_pricing"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_merchant_pricing_currency"),
        sa.CheckConstraint("basis_points BETWEEN 0 AND 10000", name="ck_merchant_pricing_basis_points"),
        sa.CheckConstraint("fixed_minor >= 0", name="ck_merchant_pricing_fixed_minor"),
    )
    op.execute("ALTER TABLE merchant_pricing ENABLE ROW LEVEL SECURITY")
    op.execute(
        f'CREATE POLICY tenant_isolation ON merchant_pricing TO "{roles.app}" '
        "USING (merchant_id = current_setting('bastion.merchant_id', true))"
    )
    op.execute(f'GRANT SELECT ON merchant_pricing TO "{roles.app}"')


def downgrade() -> None:
    op.drop_table("merchant_pricing")
