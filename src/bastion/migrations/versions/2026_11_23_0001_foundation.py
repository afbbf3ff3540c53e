"""Foundation: merchants, API keys, customers, audit trail, outbox, idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from bastion.platform.db import ServiceRoles

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TENANT = (
    "merchant_id = current_setting('bastion.merchant_id', true) "
    "AND livemode = (current_setting('bastion.livemode', true) = 'true')"
)


def _roles() -> ServiceRoles:
    roles: ServiceRoles = context.config.attributes["roles"]
    return roles


def _tenant_table(name: str, *, worker: bool) -> None:
    roles = _roles()
    op.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
    op.execute(f'CREATE POLICY tenant_isolation ON {name} TO "{roles.app}" USING ({_TENANT}) WITH CHECK ({_TENANT})')
    if worker:
        op.execute(f'CREATE POLICY worker_all_tenants ON {name} TO "{roles.worker}" USING (true)')


def upgrade() -> None:
    roles = _roles()
    app, worker = f'"{roles.app}"', f'"{roles.worker}"'
    # PostgreSQL 14 still lets PUBLIC create objects in the public schema.
    op.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {app}, {worker}")

    op.create_table(
        "merchants",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_merchants"),
    )
    op.execute("ALTER TABLE merchants ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON merchants TO {app} USING (id = current_setting('bastion.merchant_id', true))")
    op.execute(f"GRANT SELECT ON merchants TO {app}")

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column(
            "merchant_id", sa.Text, sa.ForeignKey("merchants.id", name="fk_api_keys_merchant_id_merchants"), nullable=False
        ),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("publishable_hash", sa.Text, nullable=False),
        sa.Column("secret_hint", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("secret_hash", name="uq_api_keys_secret_hash"),
        sa.UniqueConstraint("publishable_hash", name="uq_api_keys_publishable_hash"),
    )
    op.create_index("ix_api_keys_merchant_id", "api_keys", ["merchant_id"])
    # The API role cannot read api_keys; it may only look one key up by its keyed hash.
    op.execute("ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY")
    op.execute(
        """
        CREATE FUNCTION api_key_by_hash(secret_hash_in text)
        RETURNS TABLE (id text, merchant_id text, livemode boolean, scopes text[], secret_hash text, revoked boolean)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
            SELECT k.id, k.merchant_id, k.livemode, k.scopes, k.secret_hash, k.revoked_at IS NOT NULL
            FROM api_keys k WHERE k.secret_hash = secret_hash_in
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION api_key_by_hash(text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION api_key_by_hash(text) TO {app}")

    op.create_table(
        "customers",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column(
            "merchant_id", sa.Text, sa.ForeignKey("merchants.id", name="fk_customers_merchant_id_merchants"), nullable=False
        ),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("email", sa.Text),
        sa.Column("name", sa.Text),
        sa.Column("phone", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("metadata", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
    )
    op.create_index("ix_customers_merchant_id_livemode_id", "customers", ["merchant_id", "livemode", "id"])
    _tenant_table("customers", worker=False)
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON customers TO {app}")

    op.create_table(
        "audit_events",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("insert_order", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.Text),
        sa.Column("livemode", sa.Boolean),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action_type", sa.Text, nullable=False),
        sa.Column("resource_type", sa.Text, nullable=False),
        sa.Column("resource_id", sa.Text, nullable=False),
        sa.Column("before_state", postgresql.JSONB),
        sa.Column("after_state", postgresql.JSONB),
        sa.Column("ip_address", postgresql.INET),
        sa.Column("device_id", sa.Text),
        sa.Column("request_id", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.UniqueConstraint("insert_order", name="uq_audit_events_insert_order"),
    )
    op.create_index("ix_audit_events_merchant_id_resource_id", "audit_events", ["merchant_id", "resource_id"])
    _tenant_table("audit_events", worker=True)
    op.execute(f"GRANT SELECT, INSERT ON audit_events TO {app}")
    op.execute(f"GRANT SELECT ON audit_events TO {worker}")

    op.create_table(
        "audit_seal_queue",
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("insert_order", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_audit_seal_queue"),
    )
    op.create_index("ix_audit_seal_queue_insert_order", "audit_seal_queue", ["insert_order"])
    op.execute(f"GRANT SELECT, DELETE ON audit_seal_queue TO {worker}")
    # SECURITY DEFINER: the API role enqueues through the trigger without any grant on the queue.
    op.execute(
        """
        CREATE FUNCTION audit_events_enqueue() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
        BEGIN
            INSERT INTO audit_seal_queue (event_id, insert_order) VALUES (NEW.id, NEW.insert_order);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_events_enqueue AFTER INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_events_enqueue()"
    )

    op.create_table(
        "audit_seals",
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("prev_hash", sa.Text, nullable=False),
        sa.Column("row_hash", sa.Text, nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_seals"),
        sa.UniqueConstraint("event_id", name="uq_audit_seals_event_id"),
    )
    op.execute(f"GRANT SELECT, INSERT ON audit_seals TO {worker}")

    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("chain_hash", sa.Text, nullable=False),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_checkpoints"),
    )
    op.execute(f"GRANT SELECT, INSERT ON audit_checkpoints TO {worker}")

    op.create_table(
        "events",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, sa.ForeignKey("merchants.id", name="fk_events_merchant_id_merchants"), nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("data", postgresql.JSONB, nullable=False),
        sa.Column("request_id", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_merchant_id_livemode_id", "events", ["merchant_id", "livemode", "id"])
    op.create_index("ix_events_unpublished", "events", ["id"], postgresql_where=sa.text("published_at IS NULL"))
    _tenant_table("events", worker=True)
    op.execute(f"GRANT SELECT, INSERT ON events TO {app}")
    op.execute(f"GRANT SELECT, UPDATE (published_at) ON events TO {worker}")
    # Wakes the relay at commit; NOTIFY is transactional, so an aborted command wakes no one.
    op.execute(
        """
        CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('bastion_outbox', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute("CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION events_notify()")

    op.create_table(
        "event_inbox",
        sa.Column("subscriber", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("subscriber", "event_id", name="pk_event_inbox"),
    )
    op.execute(f"GRANT SELECT, INSERT ON event_inbox TO {worker}")

    op.create_table(
        "idempotency_keys",
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response_body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("merchant_id", "livemode", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    _tenant_table("idempotency_keys", worker=True)
    op.execute(f"GRANT SELECT, INSERT ON idempotency_keys TO {app}")
    op.execute(f"GRANT SELECT, DELETE ON idempotency_keys TO {worker}")


def downgrade() -> None:
    for table in (
        "idempotency_keys",
        "event_inbox",
        "events",
        "audit_checkpoints",
        "audit_seals",
        "audit_seal_queue",
        "audit_events",
        "customers",
        "api_keys",
        "merchants",
    ):
        op.drop_table(table)
    op.execute("DROP FUNCTION events_notify()")
    op.execute("DROP FUNCTION audit_events_enqueue()")
    op.execute("DROP FUNCTION api_key_by_hash(text)")
    roles = _roles()
    op.execute(f'REVOKE USAGE ON SCHEMA public FROM "{roles.app}", "{roles.worker}"')
