"""Settlement: the sandbox acquirer's settlements (each capture, refund and lost dispute settled
once), and Bastion's record of them, each merchant's own by row-level security; each charge,
refund and dispute names the settlement that paid it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import context, op

from bastion.platform.db import ServiceRoles

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)
_SETTLED = ("payments", "refunds", "disputes")


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.create_table(
        "settlements",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("merchant", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("settled_on", sa.Date, nullable=False),
        sa.Column("net", sa.BigInteger, nullable=False),
        sa.Column("item_count", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_settlements"),
        schema="acquirer",
    )
    op.create_index("ix_settlements_settled_on", "settlements", ["settled_on"], schema="acquirer")
    op.execute(f'GRANT SELECT, INSERT ON acquirer.settlements TO "{roles.acquirer}"')
    for table in _SETTLED:
        op.add_column(table, sa.Column("settlement_id", sa.Text), schema="acquirer")
        op.create_index(f"ix_{table}_settlement_id", table, ["settlement_id"], schema="acquirer")

    op.create_table(
        "settlements",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column(
            "merchant_id", sa.Text, sa.ForeignKey("merchants.id", name="fk_settlements_merchant_id_merchants"), nullable=False
        ),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("connector", sa.Text, nullable=False),
        sa.Column("connector_reference", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("settled_on", sa.Date, nullable=False),
        sa.Column("net", sa.BigInteger, nullable=False),
        sa.Column("released", sa.BigInteger, nullable=False),
        sa.Column("entry_id", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_settlements"),
        sa.UniqueConstraint("connector", "connector_reference", name="uq_settlements_connector_connector_reference"),
    )
    op.create_index("ix_settlements_merchant_id_livemode_id", "settlements", ["merchant_id", "livemode", "id"])
    op.execute("ALTER TABLE settlements ENABLE ROW LEVEL SECURITY")
    op.execute(f'CREATE POLICY tenant_isolation ON settlements TO "{roles.app}" USING ({_TENANT}) WITH CHECK ({_TENANT})')
    op.execute(f'GRANT SELECT, INSERT ON settlements TO "{roles.app}"')
    for table in ("charges", "refunds", "disputes"):
        op.add_column(
            table,
            sa.Column("settlement_id", sa.Text, sa.ForeignKey("settlements.id", name=f"fk_{table}_settlement_id_settlements")),
        )


def downgrade() -> None:
    for table in ("charges", "refunds", "disputes"):
        op.drop_column(table, "settlement_id")
    op.drop_table("settlements")
    for table in _SETTLED:
        op.drop_index(f"ix_{table}_settlement_id", table, schema="acquirer")
        op.drop_column(table, "settlement_id", schema="acquirer")
    op.drop_table("settlements", schema="acquirer")
