"""Webhook endpoints, each merchant's own by row-level security; their signing secrets sealed.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_MERCHANT_KEY = "fk_webhook_endpoints_merchant_id_merchants"
_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column(
            "merchant_id",
            sa.Text,
            sa.ForeignKey("merchants.id", name="fk_webhook_endpoints_merchant_id_merchants"),
            nullable=False,
        ),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("enabled_events", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("metadata", postgresql.JSONB, nullable=False),
        sa.Column("ordered", sa.Boolean, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary, nullable=False),
        sa.Column("previous_secret_sealed", sa.LargeBinary),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_endpoints"),
    )
    op.create_index("ix_webhook_endpoints_merchant_id_livemode_id", "webhook_endpoints", ["merchant_id", "livemode", "id"])
    op.execute("ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY")
    op.execute(f'CREATE POLICY tenant_isolation ON webhook_endpoints TO "{roles.app}" USING ({_TENANT}) WITH CHECK ({_TENANT})')
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON webhook_endpoints TO "{roles.app}"')


def downgrade() -> None:
    op.drop_table("webhook_endpoints")
