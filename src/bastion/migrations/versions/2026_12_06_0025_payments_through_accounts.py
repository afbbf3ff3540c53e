"""Payments through merchants' connector accounts: the account a PaymentIntent is pinned to,
the account each charge went through and the routing that chose it; a function that finds an
account's merchant for its notifications (which arrive without an API key).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

_OWNER = "connector_account_owner(account_id text)"


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.add_column(
        "payment_intents", sa.Column("connector_account_id", sa.Text, sa.ForeignKey("connector_accounts.id"), nullable=True)
    )
    op.add_column("charges", sa.Column("connector_account_id", sa.Text, sa.ForeignKey("connector_accounts.id"), nullable=True))
    op.add_column("charges", sa.Column("routing", postgresql.JSONB, nullable=True))
    # Ids only: the route still opens the account in the merchant's own transaction, under its policies.
    op.execute(
        f"""
        CREATE FUNCTION {_OWNER} RETURNS TABLE (merchant_id text, livemode boolean, connector text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT a.merchant_id, a.livemode, a.connector FROM connector_accounts a WHERE a.id = account_id
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {_OWNER} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {_OWNER} TO "{roles.app}"')


def downgrade() -> None:
    op.execute("DROP FUNCTION connector_account_owner(text)")
    op.drop_column("charges", "routing")
    op.drop_column("charges", "connector_account_id")
    op.drop_column("payment_intents", "connector_account_id")
