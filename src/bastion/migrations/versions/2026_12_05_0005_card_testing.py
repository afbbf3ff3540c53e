"""Card testing signals: the vault records a suspected card-testing burst as one audit row and
one `radar.card_testing_suspected` event, through one function, since it has no grant on the
API's tables (docs/adr/0013-card-testing-signals.md).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from alembic import context, op

from bastion.platform.db import ServiceRoles

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SIGNATURE = "vault_record_card_testing(uuid, text, text, boolean, text, jsonb, inet, text, text, timestamptz)"


def upgrade() -> None:
    roles: ServiceRoles = context.config.attributes["roles"]
    # SECURITY DEFINER, and every column but the signal's own fields fixed here: the vault can
    # write this one kind of audit row and event, and nothing else, in the API's tables.
    op.execute(
        """
        CREATE FUNCTION vault_record_card_testing(
            audit_id uuid, event_id text, merchant_id_in text, livemode_in boolean, signal_id text, signal jsonb,
            ip inet, device text, request text, at timestamptz
        ) RETURNS void
        LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
            INSERT INTO audit_events (id, merchant_id, livemode, actor, action_type, resource_type, resource_id,
                                      before_state, after_state, ip_address, device_id, request_id, created_at)
            VALUES (audit_id, merchant_id_in, livemode_in, 'vault', 'card_testing.suspected', 'card_testing_signal',
                    signal_id, NULL, signal, ip, device, request, at);
            INSERT INTO events (id, merchant_id, livemode, type, data, request_id, created_at)
            VALUES (event_id, merchant_id_in, livemode_in, 'radar.card_testing_suspected',
                    jsonb_build_object('object', signal), request, at);
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {_SIGNATURE} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {_SIGNATURE} TO "{roles.vault}"')


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {_SIGNATURE}")
