"""Risk: exchange rates to US dollars for `:amount_in_usd:`, platform-wide: the API reads them,
the owner loads them (`bastion risk rates load`).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import context, op

from bastion.platform.db import ServiceRoles

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.create_table(
        "risk_usd_rates",
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("usd_per_unit", sa.Numeric(20, 10), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("currency", name="pk_risk_usd_rates"),
        sa.CheckConstraint("usd_per_unit > 0", name="usd_per_unit"),
    )
    op.execute(f'GRANT SELECT ON risk_usd_rates TO "{roles.app}"')


def downgrade() -> None:
    op.drop_table("risk_usd_rates")
