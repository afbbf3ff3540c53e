"""Card BINs for the risk engine: the vault keeps each new card's first six digits and hands
them to the API with the rest of its metadata; payment methods keep them; and a platform-wide
table of issuers' ranges gives their country (`bastion risk iin load`).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import context, op

from bastion.platform.db import ServiceRoles

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.add_column("cards", sa.Column("bin", sa.Text), schema="vault")
    op.add_column("payment_methods", sa.Column("card_bin", sa.Text))
    op.create_table(
        "risk_iin_ranges",
        sa.Column("low", sa.BigInteger, nullable=False),
        sa.Column("high", sa.BigInteger, nullable=False),
        sa.Column("country", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("low", "high", name="pk_risk_iin_ranges"),
        sa.CheckConstraint("low <= high", name="range"),
    )
    op.execute(f'GRANT SELECT ON risk_iin_ranges TO "{roles.app}"')


def downgrade() -> None:
    op.drop_table("risk_iin_ranges")
    op.drop_column("payment_methods", "card_bin")
    op.drop_column("cards", "bin", schema="vault")
