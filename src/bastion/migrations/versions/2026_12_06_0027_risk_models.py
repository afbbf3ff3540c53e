"""Risk models: the labelled history they learn from (imported files and Bastion's own payments,
each merchant's own by row-level security), the files imported, the registry of model versions
and the daily drift of their features (the platform's, read by the API, written by the CLI and
the worker).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def _merchant(table: str) -> sa.Column[str]:
    foreign_key = sa.ForeignKey("merchants.id", name=f"fk_{table}_merchant_id_merchants")
    return sa.Column("merchant_id", sa.Text, foreign_key, nullable=False)


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.create_table(
        "risk_history_imports",
        sa.Column("id", sa.Text, nullable=False),
        _merchant("risk_history_imports"),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("file_sha256", sa.Text, nullable=False),
        sa.Column("file_name", sa.Text, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("frauds", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_risk_history_imports"),
        sa.UniqueConstraint(
            "merchant_id", "livemode", "file_sha256", name="uq_risk_history_imports_merchant_id_livemode_file_sha256"
        ),
    )
    # Millions of rows arrive at once (an import): no foreign keys, checked row by row, on this
    # table (its merchant is checked once, by its import's row), and its look-ups by customer and
    # by terminal go through the keys' 64-bit hashes, cheaper to index than the text (ADR 32).
    op.create_table(
        "risk_history",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("transaction_id", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("customer_key", sa.Text, nullable=False),
        sa.Column("terminal_key", sa.Text, nullable=False),
        sa.Column(
            "customer_hash", sa.BigInteger, sa.Computed("hashtextextended(customer_key, 0)", persisted=True), nullable=False
        ),
        sa.Column(
            "terminal_hash", sa.BigInteger, sa.Computed("hashtextextended(terminal_key, 0)", persisted=True), nullable=False
        ),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("fraud", sa.Boolean, nullable=False),
        sa.Column("fraud_scenario", sa.SmallInteger),
        sa.Column("signals", postgresql.JSONB),
        sa.Column("import_id", sa.Text),
        sa.Column("labelled_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_risk_history"),
        sa.CheckConstraint("source IN ('import', 'payment')", name="source"),
        sa.CheckConstraint("amount >= 0 AND amount <> 'NaN'", name="amount"),
        sa.CheckConstraint(
            "length(transaction_id) BETWEEN 1 AND 200 AND length(customer_key) BETWEEN 1 AND 200 "
            "AND length(terminal_key) BETWEEN 1 AND 200",
            name="keys",
        ),
    )
    op.create_index("ix_risk_history_customer", "risk_history", ["customer_hash", "occurred_at"])
    op.create_index("ix_risk_history_terminal", "risk_history", ["terminal_hash", "occurred_at"])
    op.create_index(
        "ix_risk_history_merchant_id_livemode_payment",
        "risk_history",
        ["merchant_id", "livemode", "transaction_id"],
        unique=True,
        postgresql_where=sa.text("source = 'payment'"),
    )
    op.execute("ALTER TABLE risk_history ENABLE ROW LEVEL SECURITY")
    op.execute(f'CREATE POLICY tenant_isolation ON risk_history TO "{roles.app}" USING ({_TENANT}) WITH CHECK ({_TENANT})')
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON risk_history TO "{roles.app}"')

    op.create_table(
        "risk_models",
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("file_name", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("trained_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trained_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delay_days", sa.Integer, nullable=False),
        sa.Column("features", postgresql.JSONB, nullable=False),
        sa.Column("params", postgresql.JSONB, nullable=False),
        sa.Column("metrics", postgresql.JSONB, nullable=False),
        sa.Column("reference", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("championed_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("version", name="pk_risk_models"),
        sa.CheckConstraint("status IN ('candidate', 'champion', 'challenger', 'retired')", name="status"),
        sa.CheckConstraint("version > 0", name="version"),
    )
    op.create_index(
        "ix_risk_models_status",
        "risk_models",
        ["status"],
        unique=True,
        postgresql_where=sa.text("status IN ('champion', 'challenger')"),
    )
    op.execute(f'GRANT SELECT ON risk_models TO "{roles.app}"')

    # Each promotion, with the champion it replaced: a rollback undoes the latest one not undone.
    op.create_table(
        "risk_model_promotions",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column(
            "version",
            sa.Integer,
            sa.ForeignKey("risk_models.version", name="fk_risk_model_promotions_version_risk_models"),
            nullable=False,
        ),
        sa.Column(
            "replaced",
            sa.Integer,
            sa.ForeignKey("risk_models.version", name="fk_risk_model_promotions_replaced_risk_models"),
        ),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rolled_back_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_risk_model_promotions"),
    )
    op.create_table(
        "risk_model_drift",
        sa.Column(
            "version",
            sa.Integer,
            sa.ForeignKey("risk_models.version", name="fk_risk_model_drift_version_risk_models"),
            nullable=False,
        ),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("feature", sa.Text, nullable=False),
        sa.Column("psi", sa.Float, nullable=False),
        sa.Column("scored", sa.BigInteger, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", "day", "feature", name="pk_risk_model_drift"),
    )
    # What the model saw and said of each decision: its version, score, top contributions, the
    # feature values (for drift) and the challenger's score in shadow.
    op.add_column("risk_decisions", sa.Column("model", postgresql.JSONB))
    # The worker reads the day's scored decisions of every merchant and writes the drift.
    op.execute(f'CREATE POLICY worker_all_tenants ON risk_decisions TO "{roles.worker}" USING (true)')
    op.execute(f'GRANT SELECT ON risk_decisions TO "{roles.worker}"')
    op.execute(f'GRANT SELECT ON risk_models TO "{roles.worker}"')
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON risk_model_drift TO "{roles.worker}"')
    # The API shows the champion's latest drift at /metrics.
    op.execute(f'GRANT SELECT ON risk_model_drift TO "{roles.app}"')


def downgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.execute(f'REVOKE SELECT ON risk_decisions FROM "{roles.worker}"')
    op.execute("DROP POLICY worker_all_tenants ON risk_decisions")
    op.drop_column("risk_decisions", "model")
    op.drop_table("risk_model_drift")
    op.drop_table("risk_model_promotions")
    op.drop_table("risk_models")
    op.drop_table("risk_history")
    op.drop_table("risk_history_imports")
