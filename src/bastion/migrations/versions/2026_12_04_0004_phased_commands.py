"""Commands in phases: an idempotency key records a command's recovery point, the state it
resumes from and who holds it, so that a command cut short between its transactions is
finished by the client's retry or by the API's janitor (docs/adr/0010-phased-commands.md).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    app = f'"{roles.app}"'
    op.alter_column("idempotency_keys", "status_code", nullable=True)
    op.alter_column("idempotency_keys", "response_body", nullable=True)
    op.add_column("idempotency_keys", sa.Column("recovery_point", sa.Text, nullable=False, server_default=sa.text("'finished'")))
    op.add_column("idempotency_keys", sa.Column("command", sa.Text, nullable=True))
    op.add_column("idempotency_keys", sa.Column("state", postgresql.JSONB, nullable=True))
    op.add_column("idempotency_keys", sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        "recovery_point_known",
        "idempotency_keys",
        "recovery_point = 'finished' AND status_code IS NOT NULL AND response_body IS NOT NULL "
        "OR recovery_point = 'started' AND command IS NOT NULL AND state IS NOT NULL",
    )
    op.create_index(
        "ix_idempotency_keys_started", "idempotency_keys", ["locked_at"], postgresql_where=sa.text("recovery_point = 'started'")
    )
    # The janitor finds abandoned commands of every merchant through this one function: the
    # API role sees one tenant's rows only, and gets no more than the keys to resume.
    op.execute(
        """
        CREATE FUNCTION abandoned_idempotency_keys(locked_before timestamptz, count_max integer)
        RETURNS TABLE (merchant_id text, livemode boolean, key text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
            SELECT k.merchant_id, k.livemode, k.key FROM idempotency_keys k
            WHERE k.recovery_point = 'started' AND (k.locked_at IS NULL OR k.locked_at < locked_before)
            ORDER BY k.created_at
            LIMIT count_max
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION abandoned_idempotency_keys(timestamptz, integer) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION abandoned_idempotency_keys(timestamptz, integer) TO {app}")
    op.execute(f"GRANT UPDATE, DELETE ON idempotency_keys TO {app}")


def downgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.execute(f'REVOKE UPDATE, DELETE ON idempotency_keys FROM "{roles.app}"')
    op.execute("DROP FUNCTION abandoned_idempotency_keys(timestamptz, integer)")
    op.drop_index("ix_idempotency_keys_started", "idempotency_keys")
    op.drop_constraint(op.f("ck_idempotency_keys_recovery_point_known"), "idempotency_keys", type_="check")
    for column in ("locked_at", "state", "command", "recovery_point"):
        op.drop_column("idempotency_keys", column)
    op.execute("DELETE FROM idempotency_keys WHERE status_code IS NULL OR response_body IS NULL")
    op.alter_column("idempotency_keys", "response_body", nullable=False)
    op.alter_column("idempotency_keys", "status_code", nullable=False)
