"""Webhook endpoints choose how their deliveries are signed: Standard Webhooks (every endpoint
so far) or Stripe's `Stripe-Signature`.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The server default makes every existing endpoint what it was: signed per Standard Webhooks.
    # No grant: the API's role writes the table's every column, and the worker, which signs,
    # reads them all (0022, 0023); the worker's column grants leave this one to the merchant.
    op.add_column(
        "webhook_endpoints",
        sa.Column("signature_scheme", sa.Text, nullable=False, server_default=sa.text("'standard_webhooks'")),
    )
    # Named by the metadata's convention: ck_webhook_endpoints_signature_scheme.
    op.create_check_constraint("signature_scheme", "webhook_endpoints", "signature_scheme IN ('standard_webhooks', 'stripe')")


def downgrade() -> None:
    # Its check constraint goes with it.
    op.drop_column("webhook_endpoints", "signature_scheme")
