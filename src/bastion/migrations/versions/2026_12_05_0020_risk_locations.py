"""Risk: where each card, customer and device was last located, for impossible travel; each
merchant's own by row-level security.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import context, op

from bastion.platform.db import ServiceRoles

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.create_table(
        "risk_locations",
        sa.Column(
            "merchant_id", sa.Text, sa.ForeignKey("merchants.id", name="fk_risk_locations_merchant_id_merchants"), nullable=False
        ),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("latitude", sa.Numeric(9, 6), nullable=False),
        sa.Column("longitude", sa.Numeric(9, 6), nullable=False),
        sa.Column("accuracy_km", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "livemode", "subject", name="pk_risk_locations"),
    )
    op.execute("ALTER TABLE risk_locations ENABLE ROW LEVEL SECURITY")
    op.execute(f'CREATE POLICY tenant_isolation ON risk_locations TO "{roles.app}" USING ({_TENANT}) WITH CHECK ({_TENANT})')
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON risk_locations TO "{roles.app}"')


def downgrade() -> None:
    op.drop_table("risk_locations")
