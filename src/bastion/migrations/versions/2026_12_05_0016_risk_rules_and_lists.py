"""Risk: versioned rulesets and the lists their rules name, each merchant's own by row-level
security.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def _merchant(table: str) -> sa.Column[str]:
    return sa.Column(
        "merchant_id", sa.Text, sa.ForeignKey("merchants.id", name=f"fk_{table}_merchant_id_merchants"), nullable=False
    )


def _tenant_table(table: str, grants: str) -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f'CREATE POLICY tenant_isolation ON {table} TO "{roles.app}" USING ({_TENANT}) WITH CHECK ({_TENANT})')
    op.execute(f'GRANT {grants} ON {table} TO "{roles.app}"')


def upgrade() -> None:
    op.create_table(
        "risk_rulesets",
        sa.Column("id", sa.Text, nullable=False),
        _merchant("risk_rulesets"),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("rules", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True)),
        sa.Column("retired_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_risk_rulesets"),
        sa.UniqueConstraint("merchant_id", "livemode", "version", name="uq_risk_rulesets_merchant_id_livemode_version"),
        sa.CheckConstraint("status IN ('draft', 'live', 'shadow', 'retired')", name="status"),
        sa.CheckConstraint("version > 0", name="version"),
    )
    op.create_index("ix_risk_rulesets_merchant_id_livemode_id", "risk_rulesets", ["merchant_id", "livemode", "id"])
    op.create_index(
        "ix_risk_rulesets_merchant_id_livemode_status",
        "risk_rulesets",
        ["merchant_id", "livemode", "status"],
        unique=True,
        postgresql_where=sa.text("status IN ('live', 'shadow')"),
    )
    _tenant_table("risk_rulesets", "SELECT, INSERT, UPDATE")

    op.create_table(
        "risk_lists",
        sa.Column("id", sa.Text, nullable=False),
        _merchant("risk_lists"),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("alias", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("item_type", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_risk_lists"),
        sa.UniqueConstraint("merchant_id", "livemode", "alias", name="uq_risk_lists_merchant_id_livemode_alias"),
        sa.CheckConstraint(
            "item_type IN ('card_fingerprint', 'email', 'email_domain', 'ip', 'device_id', 'card_bin', 'country')",
            name="item_type",
        ),
    )
    op.create_index("ix_risk_lists_merchant_id_livemode_id", "risk_lists", ["merchant_id", "livemode", "id"])
    _tenant_table("risk_lists", "SELECT, INSERT, DELETE")

    op.create_table(
        "risk_list_items",
        sa.Column("id", sa.Text, nullable=False),
        _merchant("risk_list_items"),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column(
            "list_id",
            sa.Text,
            sa.ForeignKey("risk_lists.id", name="fk_risk_list_items_list_id_risk_lists", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_risk_list_items"),
        sa.UniqueConstraint("list_id", "value", name="uq_risk_list_items_list_id_value"),
    )
    op.create_index(
        "ix_risk_list_items_merchant_id_livemode_list_id_id", "risk_list_items", ["merchant_id", "livemode", "list_id", "id"]
    )
    _tenant_table("risk_list_items", "SELECT, INSERT, DELETE")


def downgrade() -> None:
    op.drop_table("risk_list_items")
    op.drop_table("risk_lists")
    op.drop_table("risk_rulesets")
