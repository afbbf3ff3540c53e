"""Ledger: accounts, striped balances, the append-only journal and open holds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.ledger.domain import PLATFORM_MERCHANT_ID, POSTINGS_MAX, STRIPES_MAX
from bastion.platform.db import ServiceRoles

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_LIVEMODE = "livemode = (current_setting('bastion.livemode', true) = 'true')"
_TENANT = f"merchant_id = current_setting('bastion.merchant_id', true) AND {_LIVEMODE}"
# Platform accounts (a fee account every payment credits) belong to the platform
# merchant; a tenant's transaction sees them only after the ledger facade switched
# `bastion.ledger_platform` on for that transaction.
_TENANT_OR_PLATFORM = (
    f"{_LIVEMODE} AND (merchant_id = current_setting('bastion.merchant_id', true) OR "
    f"(merchant_id = '{PLATFORM_MERCHANT_ID}' AND current_setting('bastion.ledger_platform', true) = 'on'))"
)
_JOURNAL = ("ledger_entries", "ledger_postings")


def _roles() -> ServiceRoles:
    roles: ServiceRoles = context.config.attributes["roles"]
    return roles


def _policies(table: str, tenant: str) -> None:
    roles = _roles()
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f'CREATE POLICY tenant_isolation ON {table} TO "{roles.app}" USING ({tenant}) WITH CHECK ({tenant})')
    op.execute(f'CREATE POLICY worker_all_tenants ON {table} TO "{roles.worker}" USING (true)')


def _created_at() -> "sa.Column[object]":
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    roles = _roles()
    app, worker = f'"{roles.app}"', f'"{roles.worker}"'
    op.execute(f"INSERT INTO merchants (id, name) VALUES ('{PLATFORM_MERCHANT_ID}', 'Platform') ON CONFLICT (id) DO NOTHING")

    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column(
            "merchant_id", sa.Text, sa.ForeignKey("merchants.id", name="fk_ledger_accounts_merchant_id_merchants"), nullable=False
        ),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("code", sa.Text),
        sa.Column("name", sa.Text),
        sa.Column("exchange", sa.Boolean, nullable=False),
        sa.Column("debits_must_not_exceed_credits", sa.Boolean, nullable=False),
        sa.Column("credits_must_not_exceed_debits", sa.Boolean, nullable=False),
        sa.Column("stripes", sa.SmallInteger, nullable=False),
        sa.Column("metadata", postgresql.JSONB, nullable=False),
        _created_at(),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_accounts"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency"),
        sa.CheckConstraint("type IN ('asset', 'liability', 'equity', 'revenue', 'expense')", name="type"),
        sa.CheckConstraint(f"stripes BETWEEN 1 AND {STRIPES_MAX}", name="stripes"),
        sa.CheckConstraint("NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)", name="one_limit"),
        # A limit is checked on one row; striped balances spread an account over several.
        sa.CheckConstraint(
            "stripes = 1 OR NOT (debits_must_not_exceed_credits OR credits_must_not_exceed_debits)",
            name="limit_unstriped",
        ),
    )
    op.create_index("ix_ledger_accounts_merchant_id_livemode_id", "ledger_accounts", ["merchant_id", "livemode", "id"])
    op.create_index(
        "uq_ledger_accounts_merchant_id_livemode_code",
        "ledger_accounts",
        ["merchant_id", "livemode", "code"],
        unique=True,
        postgresql_where=sa.text("code IS NOT NULL"),
    )
    _policies("ledger_accounts", _TENANT_OR_PLATFORM)
    op.execute(f"GRANT SELECT, INSERT, UPDATE (closed_at) ON ledger_accounts TO {app}")
    op.execute(f"GRANT SELECT ON ledger_accounts TO {worker}")

    op.create_table(
        "ledger_balances",
        sa.Column(
            "account_id",
            sa.Text,
            sa.ForeignKey("ledger_accounts.id", name="fk_ledger_balances_account_id_ledger_accounts"),
            nullable=False,
        ),
        sa.Column("stripe", sa.SmallInteger, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("stripes", sa.SmallInteger, nullable=False),
        sa.Column("exchange", sa.Boolean, nullable=False),
        sa.Column("debits_must_not_exceed_credits", sa.Boolean, nullable=False),
        sa.Column("credits_must_not_exceed_debits", sa.Boolean, nullable=False),
        sa.Column("closed", sa.Boolean, nullable=False),
        sa.Column("debits_posted", sa.BigInteger, nullable=False),
        sa.Column("credits_posted", sa.BigInteger, nullable=False),
        sa.Column("debits_pending", sa.BigInteger, nullable=False),
        sa.Column("credits_pending", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "stripe", name="pk_ledger_balances"),
        sa.CheckConstraint("stripe >= 0 AND stripe < stripes", name="stripe"),
        sa.CheckConstraint(
            "debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0",
            name="not_negative",
        ),
        # TigerBeetle's account flags, as the database's own wall behind the service's check.
        sa.CheckConstraint(
            "NOT debits_must_not_exceed_credits OR debits_posted::numeric + debits_pending <= credits_posted",
            name="debits_within_credits",
        ),
        sa.CheckConstraint(
            "NOT credits_must_not_exceed_debits OR credits_posted::numeric + credits_pending <= debits_posted",
            name="credits_within_debits",
        ),
    )
    _policies("ledger_balances", _TENANT_OR_PLATFORM)
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON ledger_balances TO {app}")
    op.execute(f"GRANT SELECT, UPDATE ON ledger_balances TO {worker}")

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Text, nullable=False),
        # No foreign key to merchants: its check would share-lock the merchant's row for
        # every entry, one hot row for all its writers; row-level security checks the tenant.
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("reference", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("metadata", postgresql.JSONB, nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        _created_at(),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column(
            "pending_entry_id",
            sa.Text,
            sa.ForeignKey("ledger_entries.id", name="fk_ledger_entries_pending_entry_id_ledger_entries"),
        ),
        sa.Column(
            "reverses_entry_id",
            sa.Text,
            sa.ForeignKey("ledger_entries.id", name="fk_ledger_entries_reverses_entry_id_ledger_entries"),
        ),
        sa.Column("fx_from", sa.Text),
        sa.Column("fx_to", sa.Text),
        sa.Column("fx_rate", sa.Numeric),
        sa.Column("fx_source", sa.Text),
        sa.Column("fx_quoted_at", sa.DateTime(timezone=True)),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_entries"),
        sa.CheckConstraint(
            "kind IN ('standard', 'pending', 'post_pending', 'void_pending', 'expire_pending', 'reversal')",
            name="kind",
        ),
        sa.CheckConstraint("(kind = 'pending') = (expires_at IS NOT NULL)", name="expires_at"),
        sa.CheckConstraint(
            "(kind IN ('post_pending', 'void_pending', 'expire_pending')) = (pending_entry_id IS NOT NULL)",
            name="pending_entry_id",
        ),
        sa.CheckConstraint("(kind = 'reversal') = (reverses_entry_id IS NOT NULL)", name="reverses_entry_id"),
        sa.CheckConstraint(
            "num_nonnulls(fx_from, fx_to, fx_rate, fx_source, fx_quoted_at) IN (0, 5) AND (fx_rate IS NULL OR fx_rate > 0)",
            name="fx",
        ),
    )
    op.create_index("ix_ledger_entries_merchant_id_livemode_id", "ledger_entries", ["merchant_id", "livemode", "id"])
    op.create_index(
        "uq_ledger_entries_merchant_id_livemode_reference",
        "ledger_entries",
        ["merchant_id", "livemode", "reference"],
        unique=True,
        postgresql_where=sa.text("reference IS NOT NULL"),
    )
    # A hold is resolved once, an entry reversed once: the database's answer to a race.
    # Partial, so that the common entry (neither) adds nothing to these indexes.
    for column in ("pending_entry_id", "reverses_entry_id"):
        op.create_index(
            f"uq_ledger_entries_{column}",
            "ledger_entries",
            [column],
            unique=True,
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
        )
    _policies("ledger_entries", _TENANT)

    op.create_table(
        "ledger_postings",
        # No foreign key: its check would lock the entry row once per posting (ADR 8).
        sa.Column("entry_id", sa.Text, nullable=False),
        sa.Column("idx", sa.SmallInteger, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("stripe", sa.SmallInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("is_credit", sa.Boolean, nullable=False),
        sa.Column("is_pending", sa.Boolean, nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", "idx", name="pk_ledger_postings"),
        sa.CheckConstraint("amount_minor > 0", name="amount_positive"),
        sa.CheckConstraint(f"idx >= 0 AND idx < {POSTINGS_MAX}", name="idx"),
    )
    op.create_index(
        "ix_ledger_postings_account_id_effective_at_entry_id", "ledger_postings", ["account_id", "effective_at", "entry_id"]
    )
    _policies("ledger_postings", _TENANT)
    for table in _JOURNAL:
        op.execute(f"GRANT SELECT, INSERT ON {table} TO {app}, {worker}")

    op.create_table(
        "ledger_open_holds",
        sa.Column(
            "entry_id",
            sa.Text,
            sa.ForeignKey("ledger_entries.id", name="fk_ledger_open_holds_entry_id_ledger_entries"),
            nullable=False,
        ),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name="pk_ledger_open_holds"),
    )
    op.create_index("ix_ledger_open_holds_expires_at", "ledger_open_holds", ["expires_at"])
    _policies("ledger_open_holds", _TENANT)
    # UPDATE on one column only because SELECT ... FOR UPDATE SKIP LOCKED requires it
    # (a write takes a due hold without waiting); no statement updates the table.
    op.execute(f"GRANT SELECT, INSERT, DELETE, UPDATE (expires_at) ON ledger_open_holds TO {app}")
    # INSERT too: the expiry job writes through the one journal statement, whose holds part inserts no row.
    op.execute(f"GRANT SELECT, INSERT, DELETE, UPDATE (expires_at) ON ledger_open_holds TO {worker}")

    # Nothing in the journal is ever edited or deleted, whoever asks.
    op.execute(
        """
        CREATE FUNCTION ledger_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the ledger journal is append-only: % on % refused', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    for table in _JOURNAL:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_journal_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_journal_append_only()"
        )

    # Checked at commit, after every statement of the transaction: an entry has the
    # postings its kind requires, each in its account's currency, balanced per currency.
    # SECURITY DEFINER so that the check sees every account whatever the caller's policies.
    op.execute(
        f"""
        CREATE FUNCTION ledger_entry_balanced() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
        DECLARE
            posting_count integer;
            foreign_currency integer;
            unbalanced text;
        BEGIN
            -- One pass over the entry's postings; accounts looked up by primary key.
            SELECT count(*),
                   count(*) FILTER (
                       WHERE (SELECT a.currency FROM ledger_accounts a WHERE a.id = p.account_id) IS DISTINCT FROM p.currency
                   ),
                   (SELECT t.currency FROM (
                        SELECT q.currency FROM ledger_postings q WHERE q.entry_id = NEW.id GROUP BY q.currency
                        HAVING sum(CASE WHEN q.is_credit THEN -q.amount_minor ELSE q.amount_minor END) <> 0 LIMIT 1
                   ) t)
              INTO posting_count, foreign_currency, unbalanced
              FROM ledger_postings p
             WHERE p.entry_id = NEW.id;
            IF NEW.kind IN ('void_pending', 'expire_pending') THEN
                IF posting_count <> 0 THEN
                    RAISE EXCEPTION 'ledger entry % of kind % must have no postings', NEW.id, NEW.kind
                        USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_entry_balanced';
                END IF;
                RETURN NULL;
            END IF;
            IF posting_count < 2 OR posting_count > {POSTINGS_MAX} THEN
                RAISE EXCEPTION 'ledger entry % has % postings, not 2 to {POSTINGS_MAX}', NEW.id, posting_count
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_entry_balanced';
            END IF;
            IF foreign_currency > 0 THEN
                RAISE EXCEPTION 'ledger entry % posts to an unknown account or in another currency than its account', NEW.id
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_entry_balanced';
            END IF;
            IF unbalanced IS NOT NULL THEN
                RAISE EXCEPTION 'ledger entry % does not balance in %', NEW.id, unbalanced
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_entry_balanced';
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION ledger_entry_balanced() FROM PUBLIC")
    op.execute(
        "CREATE CONSTRAINT TRIGGER ledger_entry_balanced AFTER INSERT ON ledger_entries "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_entry_balanced()"
    )


def downgrade() -> None:
    for table in ("ledger_open_holds", "ledger_postings", "ledger_entries", "ledger_balances", "ledger_accounts"):
        op.drop_table(table)
    op.execute("DROP FUNCTION ledger_entry_balanced()")
    op.execute("DROP FUNCTION ledger_journal_append_only()")
    op.execute(f"DELETE FROM merchants WHERE id = '{PLATFORM_MERCHANT_ID}'")
