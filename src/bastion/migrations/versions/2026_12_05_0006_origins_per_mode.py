"""Card-field origins per mode: `allowed_origins` keeps the test mode's, `live_allowed_origins`
holds the live mode's (https only), and the vault's look-up returns the origins of the
publishable key's own mode.

Origins registered before were allowed in both modes: their https ones are copied to live
mode, so no live page stops working; http origins (localhost) stay in test mode only.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_LOOKUP = """
CREATE OR REPLACE FUNCTION vault_merchant_by_publishable_key(publishable_hash_in text)
RETURNS TABLE (
    key_id text, merchant_id text, livemode boolean, publishable_hash text, allowed_origins text[], revoked boolean
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT k.id, k.merchant_id, k.livemode, k.publishable_hash,
           {origins}, k.revoked_at IS NOT NULL
    FROM api_keys k JOIN merchants m ON m.id = k.merchant_id
    WHERE k.publishable_hash = publishable_hash_in
$$
"""


def upgrade() -> None:
    op.add_column("merchants", sa.Column("live_allowed_origins", postgresql.ARRAY(sa.Text), nullable=False, server_default="{}"))
    op.execute(
        "UPDATE merchants SET live_allowed_origins = "
        "ARRAY(SELECT origin FROM unnest(allowed_origins) AS origin WHERE origin LIKE 'https://%' ORDER BY origin)"
    )
    op.execute(_LOOKUP.format(origins="CASE WHEN k.livemode THEN m.live_allowed_origins ELSE m.allowed_origins END"))


def downgrade() -> None:
    op.execute(_LOOKUP.format(origins="m.allowed_origins"))
    op.drop_column("merchants", "live_allowed_origins")
