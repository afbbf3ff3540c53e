"""Balance transactions: each movement of a merchant's balance, written with the ledger entries
that make it (a capture and its fee, a refund, a dispute's fee or loss), each merchant's own by
row-level security; `bastion payments check` proves them against the ledger.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from datetime import timedelta

import sqlalchemy as sa
from alembic import context, op

from bastion.kernel.ids import new_id
from bastion.platform.db import ServiceRoles

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# What a database migrated before had already moved: the same movements books.py now writes.
_MOVED = """
SELECT merchant_id, livemode, 'charge' AS type, id AS source, amount_captured AS amount, fee, currency,
       CASE WHEN settlement_id IS NULL THEN 'pending' ELSE 'available' END AS status, updated_at AS created_at,
       settlement_id IS NOT NULL AS settled
FROM charges WHERE captured
UNION ALL
SELECT merchant_id, livemode, 'refund', id, -amount, 0, currency, 'available', updated_at, true
FROM refunds WHERE status = 'succeeded'
UNION ALL
SELECT merchant_id, livemode, 'adjustment', id, 0, fee, currency, 'available', created_at, true FROM disputes
UNION ALL
SELECT merchant_id, livemode, 'adjustment', id, -amount, 0, currency, 'available', updated_at, true
FROM disputes WHERE status = 'lost'
ORDER BY created_at
"""
_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    op.create_table(
        "balance_transactions",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column(
            "merchant_id",
            sa.Text,
            sa.ForeignKey("merchants.id", name="fk_balance_transactions_merchant_id_merchants"),
            nullable=False,
        ),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("fee", sa.BigInteger, nullable=False),
        sa.Column("net", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("available_on", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_balance_transactions"),
        sa.CheckConstraint("type IN ('charge', 'refund', 'adjustment')", name="type"),
        sa.CheckConstraint("status IN ('pending', 'available')", name="status"),
        sa.CheckConstraint("net = amount - fee", name="net"),
    )
    op.create_index("ix_balance_transactions_merchant_id_livemode_id", "balance_transactions", ["merchant_id", "livemode", "id"])
    op.create_index("ix_balance_transactions_source", "balance_transactions", ["source"])
    op.execute("ALTER TABLE balance_transactions ENABLE ROW LEVEL SECURITY")
    op.execute(
        f'CREATE POLICY tenant_isolation ON balance_transactions TO "{roles.app}" USING ({_TENANT}) WITH CHECK ({_TENANT})'
    )
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON balance_transactions TO "{roles.app}"')
    _backfill()


def _backfill() -> None:
    connection = op.get_bind()
    insert = sa.text(
        "INSERT INTO balance_transactions (id, merchant_id, livemode, type, source, amount, fee, net, currency, status, "
        "available_on, created_at) VALUES (:id, :merchant_id, :livemode, :type, :source, :amount, :fee, "
        "CAST(:amount AS bigint) - CAST(:fee AS bigint), :currency, :status, :available_on, :created_at)"
    )
    for row in connection.execute(sa.text(_MOVED)).mappings():
        # A capture not settled yet is expected after the next midnight UTC (books.next_settlement).
        moment = row["created_at"]
        available_on = (
            moment if row["settled"] else (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        )
        values = {
            name: row[name] for name in ("merchant_id", "livemode", "type", "source", "amount", "fee", "currency", "status")
        }
        connection.execute(insert, values | {"id": new_id("txn"), "available_on": available_on, "created_at": moment})


def downgrade() -> None:
    op.drop_table("balance_transactions")
