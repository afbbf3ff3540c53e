"""Connector accounts, each merchant's own by row-level security; their credentials sealed.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.create_table(
        "connector_accounts",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column(
            "merchant_id",
            sa.Text,
            sa.ForeignKey("merchants.id", name="fk_connector_accounts_merchant_id_merchants"),
            nullable=False,
        ),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("connector", sa.Text, nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("metadata", postgresql.JSONB, nullable=False),
        sa.Column("base_url", sa.Text, nullable=False),
        sa.Column("credentials_masked", postgresql.JSONB, nullable=False),
        sa.Column("credentials_sealed", sa.LargeBinary, nullable=False),
        sa.Column("data_key_sealed", sa.LargeBinary, nullable=False),
        sa.Column("algorithm", sa.Text, nullable=False),
        sa.Column("key_purpose", sa.Text, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connector_accounts"),
    )
    op.create_index("ix_connector_accounts_merchant_id_livemode_id", "connector_accounts", ["merchant_id", "livemode", "id"])
    op.execute("ALTER TABLE connector_accounts ENABLE ROW LEVEL SECURITY")
    op.execute(f'CREATE POLICY tenant_isolation ON connector_accounts TO "{roles.app}" USING ({_TENANT}) WITH CHECK ({_TENANT})')
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON connector_accounts TO "{roles.app}"')


def downgrade() -> None:
    op.drop_table("connector_accounts")
