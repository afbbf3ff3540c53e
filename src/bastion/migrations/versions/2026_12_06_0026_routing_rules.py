"""Routing rules and the authorization outcomes success-rate routing reads, each merchant's own
by row-level security; the worker prunes old outcomes across merchants.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def _merchant(table: str) -> sa.Column[str]:
    foreign_key = sa.ForeignKey("merchants.id", name=f"fk_{table}_merchant_id_merchants")
    return sa.Column("merchant_id", sa.Text, foreign_key, nullable=False)


def _isolated(table: str, roles: ServiceRoles) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f'CREATE POLICY tenant_isolation ON {table} TO "{roles.app}" USING ({_TENANT}) WITH CHECK ({_TENANT})')


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.create_table(
        "routing_rules",
        sa.Column("id", sa.Text, nullable=False),
        _merchant("routing_rules"),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("rules", postgresql.JSONB, nullable=False),
        sa.Column("default_accounts", postgresql.JSONB, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("metadata", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True)),
        sa.Column("retired_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_routing_rules"),
        sa.UniqueConstraint("merchant_id", "livemode", "version", name="uq_routing_rules_merchant_id_livemode_version"),
        sa.CheckConstraint("status IN ('draft', 'live', 'retired')", name="status"),
        sa.CheckConstraint("version > 0", name="version"),
        sa.CheckConstraint("max_attempts BETWEEN 1 AND 4", name="max_attempts"),
    )
    op.create_index("ix_routing_rules_merchant_id_livemode_id", "routing_rules", ["merchant_id", "livemode", "id"])
    op.create_index(
        "ix_routing_rules_merchant_id_livemode_live",
        "routing_rules",
        ["merchant_id", "livemode"],
        unique=True,
        postgresql_where=sa.text("status = 'live'"),
    )
    _isolated("routing_rules", roles)
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON routing_rules TO "{roles.app}"')

    op.create_table(
        "routing_outcomes",
        _merchant("routing_outcomes"),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("card_brand", sa.Text, nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stripe", sa.SmallInteger, nullable=False),
        sa.Column("attempts", sa.BigInteger, nullable=False),
        sa.Column("successes", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "merchant_id",
            "livemode",
            "account_id",
            "currency",
            "card_brand",
            "bucket_start",
            "stripe",
            name="pk_routing_outcomes",
        ),
        sa.CheckConstraint("successes BETWEEN 0 AND attempts", name="successes"),
    )
    op.create_index("ix_routing_outcomes_bucket_start", "routing_outcomes", ["bucket_start"])
    _isolated("routing_outcomes", roles)
    # The worker prunes old buckets of every merchant; it reads and deletes nothing else.
    op.execute(f'CREATE POLICY worker_all_tenants ON routing_outcomes TO "{roles.worker}" USING (true)')
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON routing_outcomes TO "{roles.app}"')
    op.execute(f'GRANT SELECT, DELETE ON routing_outcomes TO "{roles.worker}"')


def downgrade() -> None:
    op.drop_table("routing_outcomes")
    op.drop_table("routing_rules")
