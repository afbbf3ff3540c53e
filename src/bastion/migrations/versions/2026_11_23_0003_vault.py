"""Card vault: the `vault` schema and role, key versions, cards, CVCs, single-use tokens;
merchants' registered browser origins; payment methods on the API side.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)
# The vault's janitor and rotation sweep across merchants; the vault switches this on
# for those transactions only.
_TENANT_OR_SWEEP = f"({_TENANT}) OR current_setting('bastion.vault_sweep', true) = 'on'"


def _roles() -> ServiceRoles:
    roles: ServiceRoles = context.config.attributes["roles"]
    return roles


def _sealed_columns() -> list["sa.Column[object]"]:
    """An envelope-encrypted value: algorithm id, key-encryption key version, wrapped data key, nonce, ciphertext."""
    return [
        sa.Column("algorithm", sa.SmallInteger, nullable=False),
        sa.Column("key_version", sa.Integer, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("nonce", sa.LargeBinary, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    ]


def _vault_table(name: str) -> None:
    vault = f'"{_roles().vault}"'
    op.execute(f"ALTER TABLE vault.{name} ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_or_sweep ON vault.{name} TO {vault} USING ({_TENANT_OR_SWEEP}) WITH CHECK ({_TENANT})")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON vault.{name} TO {vault}")


def upgrade() -> None:
    roles = _roles()
    app, vault = f'"{roles.app}"', f'"{roles.vault}"'

    op.add_column("merchants", sa.Column("allowed_origins", postgresql.ARRAY(sa.Text), nullable=False, server_default="{}"))
    # The vault authenticates the browser's publishable key and learns where the card
    # fields may be framed, through this one function: it has no grant on any API table.
    op.execute(f"GRANT USAGE ON SCHEMA public TO {vault}")
    op.execute(
        """
        CREATE FUNCTION vault_merchant_by_publishable_key(publishable_hash_in text)
        RETURNS TABLE (
            key_id text, merchant_id text, livemode boolean, publishable_hash text, allowed_origins text[], revoked boolean
        )
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
            SELECT k.id, k.merchant_id, k.livemode, k.publishable_hash, m.allowed_origins, k.revoked_at IS NOT NULL
            FROM api_keys k JOIN merchants m ON m.id = k.merchant_id
            WHERE k.publishable_hash = publishable_hash_in
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION vault_merchant_by_publishable_key(text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION vault_merchant_by_publishable_key(text) TO {vault}")

    op.create_table(
        "payment_methods",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column(
            "merchant_id",
            sa.Text,
            sa.ForeignKey("merchants.id", name="fk_payment_methods_merchant_id_merchants"),
            nullable=False,
        ),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, sa.ForeignKey("customers.id", name="fk_payment_methods_customer_id_customers")),
        sa.Column("card_brand", sa.Text, nullable=False),
        sa.Column("card_last4", sa.Text, nullable=False),
        sa.Column("card_exp_month", sa.SmallInteger, nullable=False),
        sa.Column("card_exp_year", sa.SmallInteger, nullable=False),
        sa.Column("card_funding", sa.Text, nullable=False),
        sa.Column("card_fingerprint", sa.Text, nullable=False),
        # The vault's record of the card: what forwarding names, never the card itself.
        sa.Column("vault_card_id", sa.Text, nullable=False),
        sa.Column("signals", postgresql.JSONB, nullable=False),
        sa.Column("metadata", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_payment_methods"),
        sa.UniqueConstraint("vault_card_id", name="uq_payment_methods_vault_card_id"),
        sa.CheckConstraint("card_last4 ~ '^[0-9]{4}$'", name="ck_payment_methods_card_last4"),
    )
    op.create_index("ix_payment_methods_merchant_id_livemode_id", "payment_methods", ["merchant_id", "livemode", "id"])
    op.create_index("ix_payment_methods_customer_id", "payment_methods", ["customer_id"])
    op.execute("ALTER TABLE payment_methods ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON payment_methods TO {app} USING ({_TENANT}) WITH CHECK ({_TENANT})")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON payment_methods TO {app}")

    op.execute("CREATE SCHEMA vault")
    op.execute("REVOKE ALL ON SCHEMA vault FROM PUBLIC")
    op.execute(f"GRANT USAGE ON SCHEMA vault TO {vault}")

    op.create_table(
        "key_versions",
        sa.Column("version", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("retired_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("version", name="pk_key_versions"),
        sa.CheckConstraint("version > 0", name="ck_key_versions_version"),
        sa.CheckConstraint("state IN ('active', 'retiring', 'retired')", name="ck_key_versions_state"),
        schema="vault",
    )
    # At most one active version: the state is unique among active rows.
    op.execute("CREATE UNIQUE INDEX uq_key_versions_one_active ON vault.key_versions (state) WHERE state = 'active'")
    op.execute(f"GRANT SELECT ON vault.key_versions TO {vault}")

    op.create_table(
        "cards",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        *_sealed_columns(),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("brand", sa.Text, nullable=False),
        sa.Column("last4", sa.Text, nullable=False),
        sa.Column("exp_month", sa.SmallInteger, nullable=False),
        sa.Column("exp_year", sa.SmallInteger, nullable=False),
        sa.Column("funding", sa.Text, nullable=False),
        # Set once a token is exchanged; until then the card lives only as long as its token.
        sa.Column("payment_method_id", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cards"),
        sa.UniqueConstraint("payment_method_id", name="uq_cards_payment_method_id"),
        sa.ForeignKeyConstraint(["key_version"], ["vault.key_versions.version"], name="fk_cards_key_version_key_versions"),
        schema="vault",
    )
    op.create_index("ix_cards_key_version", "cards", ["key_version"], schema="vault")
    _vault_table("cards")

    op.create_table(
        "cvcs",
        sa.Column("card_id", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        *_sealed_columns(),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("card_id", name="pk_cvcs"),
        sa.ForeignKeyConstraint(["card_id"], ["vault.cards.id"], name="fk_cvcs_card_id_cards", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["key_version"], ["vault.key_versions.version"], name="fk_cvcs_key_version_key_versions"),
        schema="vault",
    )
    op.create_index("ix_cvcs_key_version", "cvcs", ["key_version"], schema="vault")
    op.create_index("ix_cvcs_expires_at", "cvcs", ["expires_at"], schema="vault")
    _vault_table("cvcs")

    op.create_table(
        "tokens",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("card_id", sa.Text, nullable=False),
        sa.Column("signals", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.ForeignKeyConstraint(["card_id"], ["vault.cards.id"], name="fk_tokens_card_id_cards", ondelete="CASCADE"),
        schema="vault",
    )
    op.create_index("ix_tokens_card_id", "tokens", ["card_id"], schema="vault")
    op.create_index("ix_tokens_expires_at", "tokens", ["expires_at"], schema="vault")
    _vault_table("tokens")


def downgrade() -> None:
    roles = _roles()
    for table in ("tokens", "cvcs", "cards", "key_versions"):
        op.drop_table(table, schema="vault")
    op.execute("DROP SCHEMA vault")
    op.drop_table("payment_methods")
    op.execute("DROP FUNCTION vault_merchant_by_publishable_key(text)")
    op.execute(f'REVOKE USAGE ON SCHEMA public FROM "{roles.vault}"')
    op.drop_column("merchants", "allowed_origins")
