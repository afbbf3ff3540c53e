"""The payments janitor's finds across merchants (authorizations to void when stale, attempts
whose answer was unknown), as functions of the owner that return ids only, callable by the API's
role; and the partial index they read.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import context, op

from bastion.platform.db import ServiceRoles

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_STALE = "payments_stale_authorizations(authorized_before timestamptz, count_max integer)"
_UNKNOWN = "payments_unknown_attempts(answered_before timestamptz, count_max integer)"


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.create_index(
        "ix_payment_intents_open",
        "payment_intents",
        ["latest_charge_id"],
        postgresql_where=sa.text("status IN ('requires_capture', 'processing')"),
    )
    op.execute(
        f"""
        CREATE FUNCTION {_STALE} RETURNS TABLE (merchant_id text, livemode boolean, id text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT i.merchant_id, i.livemode, i.id FROM payment_intents i JOIN charges c ON c.id = i.latest_charge_id
            WHERE i.status = 'requires_capture' AND i.command_in_flight IS NULL AND c.created_at < authorized_before
            ORDER BY c.created_at LIMIT count_max
        $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION {_UNKNOWN} RETURNS TABLE (merchant_id text, livemode boolean, id text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT c.merchant_id, c.livemode, c.id FROM payment_intents i JOIN charges c ON c.id = i.latest_charge_id
            WHERE i.status = 'processing' AND c.status = 'pending' AND c.outcome->>'type' = 'unknown'
              AND c.updated_at < answered_before
            ORDER BY c.updated_at LIMIT count_max
        $$
        """
    )
    for signature in (_STALE, _UNKNOWN):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {signature} TO "{roles.app}"')


def downgrade() -> None:
    op.execute("DROP FUNCTION payments_unknown_attempts(timestamptz, integer)")
    op.execute("DROP FUNCTION payments_stale_authorizations(timestamptz, integer)")
    op.drop_index("ix_payment_intents_open", "payment_intents")
