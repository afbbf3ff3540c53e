"""Risk: each merchant's assessment settings, the decisions with what they were made from, and
the velocity counters, each merchant's own by row-level security.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def _merchant(table: str) -> sa.Column[str]:
    foreign_key = sa.ForeignKey("merchants.id", name=f"fk_{table}_merchant_id_merchants")
    return sa.Column("merchant_id", sa.Text, foreign_key, nullable=False)


def _tenant_table(table: str, grants: str) -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f'CREATE POLICY tenant_isolation ON {table} TO "{roles.app}" USING ({_TENANT}) WITH CHECK ({_TENANT})')
    op.execute(f'GRANT {grants} ON {table} TO "{roles.app}"')


def upgrade() -> None:
    op.create_table(
        "risk_settings",
        _merchant("risk_settings"),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("budget_ms", sa.Integer, nullable=False),
        sa.Column("failure_policy", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "livemode", name="pk_risk_settings"),
        sa.CheckConstraint("budget_ms BETWEEN 1 AND 10000", name="budget_ms"),
        sa.CheckConstraint("failure_policy IN ('fail_open', 'fail_closed')", name="failure_policy"),
    )
    _tenant_table("risk_settings", "SELECT, INSERT, UPDATE")

    op.create_table(
        "risk_decisions",
        sa.Column("id", sa.Text, nullable=False),
        _merchant("risk_decisions"),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("attempt_id", sa.Text, nullable=False),
        sa.Column("payment_intent_id", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("risk_score", sa.Integer, nullable=False),
        sa.Column("risk_level", sa.Text, nullable=False),
        sa.Column("rule_id", sa.Text),
        sa.Column("reasons", postgresql.JSONB, nullable=False),
        sa.Column("ruleset_id", sa.Text, sa.ForeignKey("risk_rulesets.id", name="fk_risk_decisions_ruleset_id_risk_rulesets")),
        sa.Column("shadow", postgresql.JSONB),
        sa.Column("model_version", sa.Text),
        sa.Column("attributes", postgresql.JSONB, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_risk_decisions"),
        sa.UniqueConstraint("attempt_id", name="uq_risk_decisions_attempt_id"),
        sa.CheckConstraint("action IN ('allow', 'block', 'review', 'request_3ds')", name="action"),
        sa.CheckConstraint("risk_level IN ('normal', 'elevated', 'highest', 'not_assessed')", name="risk_level"),
        sa.CheckConstraint("risk_score BETWEEN 0 AND 100", name="risk_score"),
    )
    op.create_index("ix_risk_decisions_merchant_id_livemode_id", "risk_decisions", ["merchant_id", "livemode", "id"])
    _tenant_table("risk_decisions", "SELECT, INSERT")

    op.create_table(
        "risk_velocity_subjects",
        _merchant("risk_velocity_subjects"),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("attempts", sa.BigInteger, nullable=False),
        sa.Column("charges", sa.BigInteger, nullable=False),
        sa.Column("declines", sa.BigInteger, nullable=False),
        sa.Column("amount_in_usd", sa.Numeric(20, 2), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "livemode", "subject", name="pk_risk_velocity_subjects"),
    )
    _tenant_table("risk_velocity_subjects", "SELECT, INSERT, UPDATE")

    op.create_table(
        "risk_velocity_events",
        _merchant("risk_velocity_events"),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("attempt_id", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount_in_usd", sa.Numeric(20, 2)),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "livemode", "subject", "attempt_id", name="pk_risk_velocity_events"),
        sa.CheckConstraint("outcome IN ('pending', 'succeeded', 'declined')", name="outcome"),
    )
    op.create_index(
        "ix_risk_velocity_events_merchant_id_livemode_subject_at",
        "risk_velocity_events",
        ["merchant_id", "livemode", "subject", "at"],
    )
    op.create_index("ix_risk_velocity_events_attempt_id", "risk_velocity_events", ["attempt_id"])
    _tenant_table("risk_velocity_events", "SELECT, INSERT, UPDATE, DELETE")

    op.create_table(
        "risk_velocity_cards",
        _merchant("risk_velocity_cards"),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("card_fingerprint", sa.Text, nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "livemode", "subject", "card_fingerprint", name="pk_risk_velocity_cards"),
    )
    _tenant_table("risk_velocity_cards", "SELECT, INSERT, UPDATE")


def downgrade() -> None:
    for table in ("risk_velocity_cards", "risk_velocity_events", "risk_velocity_subjects", "risk_decisions", "risk_settings"):
        op.drop_table(table)
