"""All SQL of the payments context."""

from datetime import datetime
from typing import Any

from bastion.platform.db import AnyRow, Connection, Tenant
from bastion.platform.pagination import Page, PageRequest, fetch_page

_INSERT_PAYMENT_METHOD = """
INSERT INTO payment_methods (id, merchant_id, livemode, type, customer_id, card_brand, card_last4, card_exp_month,
                             card_exp_year, card_funding, card_fingerprint, vault_card_id, signals, metadata, created_at,
                             card_bin)
VALUES ($1, $2, $3, 'card', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT DO NOTHING
RETURNING *
"""
_GET_PAYMENT_METHOD = "SELECT * FROM payment_methods WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_PAYMENT_METHOD_EXISTS = "SELECT EXISTS (SELECT 1 FROM payment_methods WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
# Paged by fetch_page; a null $3 lists every payment method.
_PAYMENT_METHODS = (
    "SELECT * FROM payment_methods WHERE merchant_id = $1 AND livemode = $2 AND ($3::text IS NULL OR customer_id = $3)"
)


async def insert_payment_method(
    connection: Connection,
    tenant: Tenant,
    *,
    payment_method_id: str,
    customer_id: str | None,
    card: dict[str, Any],
    signals: dict[str, Any],
    metadata: dict[str, str],
    created_at: datetime,
) -> AnyRow | None:
    """A card payment method from the vault's metadata of the card (never the card itself);
    None when a concurrent exchange of the same token created it first."""
    row: AnyRow | None = await connection.fetchrow(
        _INSERT_PAYMENT_METHOD,
        payment_method_id,
        tenant.merchant_id,
        tenant.livemode,
        customer_id,
        card["brand"],
        card["last4"],
        card["exp_month"],
        card["exp_year"],
        card["funding"],
        card["fingerprint"],
        card["vault_card_id"],
        signals,
        metadata,
        created_at,
        card.get("bin"),
    )
    return row


async def get_payment_method(connection: Connection, tenant: Tenant, payment_method_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_GET_PAYMENT_METHOD, tenant.merchant_id, tenant.livemode, payment_method_id)
    return row


async def payment_method_exists(connection: Connection, tenant: Tenant, payment_method_id: str) -> bool:
    return bool(await connection.fetchval(_PAYMENT_METHOD_EXISTS, tenant.merchant_id, tenant.livemode, payment_method_id))


async def page_payment_methods(connection: Connection, tenant: Tenant, request: PageRequest, customer_id: str | None) -> Page:
    return await fetch_page(connection, _PAYMENT_METHODS, (tenant.merchant_id, tenant.livemode, customer_id), request)


# Written only for a merchant that exists: no row back means there is none.
_UPSERT_PRICING = """
INSERT INTO merchant_pricing (merchant_id, currency, basis_points, fixed_minor, updated_at)
SELECT id, $2, $3, $4, $5 FROM merchants WHERE id = $1
ON CONFLICT (merchant_id, currency) DO UPDATE
SET basis_points = EXCLUDED.basis_points, fixed_minor = EXCLUDED.fixed_minor, updated_at = EXCLUDED.updated_at
RETURNING *
"""
_PRICING = "SELECT * FROM merchant_pricing WHERE merchant_id = $1 ORDER BY currency"


async def upsert_pricing(
    connection: Connection, merchant_id: str, currency: str, *, basis_points: int, fixed_minor: int, moment: datetime
) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_UPSERT_PRICING, merchant_id, currency, basis_points, fixed_minor, moment)
    return row


async def pricing_rows(connection: Connection, merchant_id: str) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_PRICING, merchant_id)
    return rows


_INSERT_INTENT = """
INSERT INTO payment_intents (id, merchant_id, livemode, status, amount, currency, capture_method, customer_id,
                             payment_method_id, amount_capturable, amount_received, description, statement_descriptor,
                             metadata, connector_account_id, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0, $10, $11, $12, $14, $13, $13)
RETURNING *
"""
_GET_INTENT = "SELECT * FROM payment_intents WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_GET_INTENT_FOR_UPDATE = _GET_INTENT + " FOR UPDATE"
_INTENT_EXISTS = "SELECT EXISTS (SELECT 1 FROM payment_intents WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
# Every column a use case may change, written at once from the row it read and changed.
_UPDATE_INTENT = """
UPDATE payment_intents SET status = $4, amount = $5, currency = $6, capture_method = $7, customer_id = $8,
    payment_method_id = $9, amount_capturable = $10, amount_received = $11, latest_charge_id = $12,
    last_payment_error = $13, next_action = $14, cancellation_reason = $15, description = $16,
    statement_descriptor = $17, metadata = $18, command_in_flight = $19, canceled_at = $20, updated_at = $21
WHERE merchant_id = $1 AND livemode = $2 AND id = $3
RETURNING *
"""
# Paged by fetch_page; null filters do not filter. `created` bounds are unix seconds.
_INTENTS = """
SELECT * FROM payment_intents WHERE merchant_id = $1 AND livemode = $2 AND ($3::text IS NULL OR customer_id = $3)
AND ($4::bigint IS NULL OR created_at >= to_timestamp($4)) AND ($5::bigint IS NULL OR created_at < to_timestamp($5 + 1))
"""
INTENT_COLUMNS = (
    "status",
    "amount",
    "currency",
    "capture_method",
    "customer_id",
    "payment_method_id",
    "amount_capturable",
    "amount_received",
    "latest_charge_id",
    "last_payment_error",
    "next_action",
    "cancellation_reason",
    "description",
    "statement_descriptor",
    "metadata",
    "command_in_flight",
    "canceled_at",
    "updated_at",
)


async def insert_intent(connection: Connection, tenant: Tenant, values: dict[str, Any]) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _INSERT_INTENT,
        values["id"],
        tenant.merchant_id,
        tenant.livemode,
        values["status"],
        values["amount"],
        values["currency"],
        values["capture_method"],
        values["customer_id"],
        values["payment_method_id"],
        values["description"],
        values["statement_descriptor"],
        values["metadata"],
        values["created_at"],
        values["connector_account_id"],
    )
    return row


async def get_intent(connection: Connection, tenant: Tenant, intent_id: str, *, for_update: bool = False) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(
        _GET_INTENT_FOR_UPDATE if for_update else _GET_INTENT, tenant.merchant_id, tenant.livemode, intent_id
    )
    return row


async def update_intent(connection: Connection, tenant: Tenant, intent_id: str, values: dict[str, Any]) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _UPDATE_INTENT, tenant.merchant_id, tenant.livemode, intent_id, *(values[column] for column in INTENT_COLUMNS)
    )
    return row


async def intent_exists(connection: Connection, tenant: Tenant, intent_id: str) -> bool:
    return bool(await connection.fetchval(_INTENT_EXISTS, tenant.merchant_id, tenant.livemode, intent_id))


async def page_intents(
    connection: Connection,
    tenant: Tenant,
    request: PageRequest,
    *,
    customer_id: str | None,
    created_gte: int | None,
    created_lte: int | None,
) -> Page:
    arguments = (tenant.merchant_id, tenant.livemode, customer_id, created_gte, created_lte)
    return await fetch_page(connection, _INTENTS, arguments, request)


_INSERT_CHARGE = """
INSERT INTO charges (id, merchant_id, livemode, payment_intent_id, payment_method_id, status, amount, currency, captured,
                     amount_captured, amount_refunded, disputed, connector, connector_account_id, routing, fee,
                     created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, false, 0, 0, false, $8, $10, $11, 0, $9, $9)
RETURNING *
"""
_GET_CHARGE = "SELECT * FROM charges WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_GET_CHARGE_FOR_UPDATE = _GET_CHARGE + " FOR UPDATE"
_CHARGE_EXISTS = "SELECT EXISTS (SELECT 1 FROM charges WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
_UPDATE_CHARGE = """
UPDATE charges SET status = $4, captured = $5, amount_captured = $6, amount_refunded = $7, disputed = $8, outcome = $9,
    failure_code = $10, failure_message = $11, decline_code = $12, connector_reference = $13,
    authorization_entry_id = $14, fee = $15, updated_at = $16
WHERE merchant_id = $1 AND livemode = $2 AND id = $3
RETURNING *
"""
_CHARGES = """
SELECT * FROM charges WHERE merchant_id = $1 AND livemode = $2 AND ($3::text IS NULL OR payment_intent_id = $3)
"""
CHARGE_COLUMNS = (
    "status",
    "captured",
    "amount_captured",
    "amount_refunded",
    "disputed",
    "outcome",
    "failure_code",
    "failure_message",
    "decline_code",
    "connector_reference",
    "authorization_entry_id",
    "fee",
    "updated_at",
)


async def insert_charge(connection: Connection, tenant: Tenant, values: dict[str, Any]) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _INSERT_CHARGE,
        values["id"],
        tenant.merchant_id,
        tenant.livemode,
        values["payment_intent_id"],
        values["payment_method_id"],
        values["amount"],
        values["currency"],
        values["connector"],
        values["created_at"],
        values["connector_account_id"],
        values["routing"],
    )
    return row


async def get_charge(connection: Connection, tenant: Tenant, charge_id: str, *, for_update: bool = False) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(
        _GET_CHARGE_FOR_UPDATE if for_update else _GET_CHARGE, tenant.merchant_id, tenant.livemode, charge_id
    )
    return row


async def update_charge(connection: Connection, tenant: Tenant, charge_id: str, values: dict[str, Any]) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _UPDATE_CHARGE, tenant.merchant_id, tenant.livemode, charge_id, *(values[column] for column in CHARGE_COLUMNS)
    )
    return row


async def charge_exists(connection: Connection, tenant: Tenant, charge_id: str) -> bool:
    return bool(await connection.fetchval(_CHARGE_EXISTS, tenant.merchant_id, tenant.livemode, charge_id))


async def page_charges(connection: Connection, tenant: Tenant, request: PageRequest, payment_intent_id: str | None) -> Page:
    return await fetch_page(connection, _CHARGES, (tenant.merchant_id, tenant.livemode, payment_intent_id), request)


_INSERT_REFUND = """
INSERT INTO refunds (id, merchant_id, livemode, charge_id, payment_intent_id, amount, currency, status, reason, metadata,
                     created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10, $10)
RETURNING *
"""
_GET_REFUND = "SELECT * FROM refunds WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_GET_REFUND_FOR_UPDATE = _GET_REFUND + " FOR UPDATE"
_REFUND_EXISTS = "SELECT EXISTS (SELECT 1 FROM refunds WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
_UPDATE_REFUND = """
UPDATE refunds SET status = $4, failure_reason = $5, updated_at = $6 WHERE merchant_id = $1 AND livemode = $2 AND id = $3
RETURNING *
"""
_REFUNDS = """
SELECT * FROM refunds WHERE merchant_id = $1 AND livemode = $2 AND ($3::text IS NULL OR payment_intent_id = $3)
AND ($4::text IS NULL OR charge_id = $4)
"""


async def insert_refund(connection: Connection, tenant: Tenant, values: dict[str, Any]) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _INSERT_REFUND,
        values["id"],
        tenant.merchant_id,
        tenant.livemode,
        values["charge_id"],
        values["payment_intent_id"],
        values["amount"],
        values["currency"],
        values["reason"],
        values["metadata"],
        values["created_at"],
    )
    return row


async def get_refund(connection: Connection, tenant: Tenant, refund_id: str, *, for_update: bool = False) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(
        _GET_REFUND_FOR_UPDATE if for_update else _GET_REFUND, tenant.merchant_id, tenant.livemode, refund_id
    )
    return row


async def update_refund(
    connection: Connection, tenant: Tenant, refund_id: str, *, status: str, failure_reason: str | None, moment: datetime
) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _UPDATE_REFUND, tenant.merchant_id, tenant.livemode, refund_id, status, failure_reason, moment
    )
    return row


async def refund_exists(connection: Connection, tenant: Tenant, refund_id: str) -> bool:
    return bool(await connection.fetchval(_REFUND_EXISTS, tenant.merchant_id, tenant.livemode, refund_id))


async def page_refunds(
    connection: Connection, tenant: Tenant, request: PageRequest, *, payment_intent_id: str | None, charge_id: str | None
) -> Page:
    arguments = (tenant.merchant_id, tenant.livemode, payment_intent_id, charge_id)
    return await fetch_page(connection, _REFUNDS, arguments, request)


_INSERT_DISPUTE = """
INSERT INTO disputes (id, merchant_id, livemode, charge_id, payment_intent_id, amount, currency, status, reason, evidence,
                      evidence_due_by, submission_count, connector_reference, hold_entry_id, fee, metadata,
                      created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '{}', $10, 0, $11, $12, $13, '{}', $14, $14)
RETURNING *
"""
_GET_DISPUTE = "SELECT * FROM disputes WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_GET_DISPUTE_FOR_UPDATE = _GET_DISPUTE + " FOR UPDATE"
_DISPUTE_BY_REFERENCE = "SELECT * FROM disputes WHERE merchant_id = $1 AND livemode = $2 AND connector_reference = $3 FOR UPDATE"
_DISPUTE_EXISTS = "SELECT EXISTS (SELECT 1 FROM disputes WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
_UPDATE_DISPUTE = """
UPDATE disputes SET status = $4, evidence = $5, submission_count = $6, metadata = $7, updated_at = $8
WHERE merchant_id = $1 AND livemode = $2 AND id = $3
RETURNING *
"""
_DISPUTES = """
SELECT * FROM disputes WHERE merchant_id = $1 AND livemode = $2 AND ($3::text IS NULL OR payment_intent_id = $3)
AND ($4::text IS NULL OR charge_id = $4)
"""
DISPUTE_COLUMNS = ("status", "evidence", "submission_count", "metadata")


async def insert_dispute(connection: Connection, tenant: Tenant, values: dict[str, Any]) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _INSERT_DISPUTE,
        values["id"],
        tenant.merchant_id,
        tenant.livemode,
        values["charge_id"],
        values["payment_intent_id"],
        values["amount"],
        values["currency"],
        values["status"],
        values["reason"],
        values["evidence_due_by"],
        values["connector_reference"],
        values["hold_entry_id"],
        values["fee"],
        values["created_at"],
    )
    return row


async def get_dispute(connection: Connection, tenant: Tenant, dispute_id: str, *, for_update: bool = False) -> AnyRow | None:
    query = _GET_DISPUTE_FOR_UPDATE if for_update else _GET_DISPUTE
    row: AnyRow | None = await connection.fetchrow(query, tenant.merchant_id, tenant.livemode, dispute_id)
    return row


async def dispute_by_reference(connection: Connection, tenant: Tenant, reference: str) -> AnyRow | None:
    """The dispute the connector knows as `reference`, locked."""
    row: AnyRow | None = await connection.fetchrow(_DISPUTE_BY_REFERENCE, tenant.merchant_id, tenant.livemode, reference)
    return row


async def dispute_exists(connection: Connection, tenant: Tenant, dispute_id: str) -> bool:
    return bool(await connection.fetchval(_DISPUTE_EXISTS, tenant.merchant_id, tenant.livemode, dispute_id))


async def update_dispute(connection: Connection, tenant: Tenant, dispute_id: str, values: dict[str, Any]) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _UPDATE_DISPUTE,
        tenant.merchant_id,
        tenant.livemode,
        dispute_id,
        *(values[column] for column in DISPUTE_COLUMNS),
        values["updated_at"],
    )
    return row


async def page_disputes(
    connection: Connection, tenant: Tenant, request: PageRequest, *, payment_intent_id: str | None, charge_id: str | None
) -> Page:
    arguments = (tenant.merchant_id, tenant.livemode, payment_intent_id, charge_id)
    return await fetch_page(connection, _DISPUTES, arguments, request)


_SETTLEMENT_BY_REFERENCE = """
SELECT * FROM settlements WHERE merchant_id = $1 AND livemode = $2 AND connector = $3 AND connector_reference = $4
"""
_INSERT_SETTLEMENT = """
INSERT INTO settlements (id, merchant_id, livemode, connector, connector_reference, currency, settled_on, net, released,
                         entry_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING *
"""
_MARK_SETTLED = {
    "charges": "UPDATE charges SET settlement_id = $3 WHERE merchant_id = $1 AND livemode = $2 AND id = ANY($4::text[])",
    "refunds": "UPDATE refunds SET settlement_id = $3 WHERE merchant_id = $1 AND livemode = $2 AND id = ANY($4::text[])",
    "disputes": "UPDATE disputes SET settlement_id = $3 WHERE merchant_id = $1 AND livemode = $2 AND id = ANY($4::text[])",
}


async def settlement_by_reference(connection: Connection, tenant: Tenant, connector: str, reference: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(
        _SETTLEMENT_BY_REFERENCE, tenant.merchant_id, tenant.livemode, connector, reference
    )
    return row


async def insert_settlement(connection: Connection, tenant: Tenant, values: dict[str, Any]) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _INSERT_SETTLEMENT,
        values["id"],
        tenant.merchant_id,
        tenant.livemode,
        values["connector"],
        values["connector_reference"],
        values["currency"],
        values["settled_on"],
        values["net"],
        values["released"],
        values["entry_id"],
        values["created_at"],
    )
    return row


async def mark_settled(
    connection: Connection, tenant: Tenant, settlement_id: str, *, charges: list[str], refunds: list[str], disputes: list[str]
) -> None:
    for table, ids in (("charges", charges), ("refunds", refunds), ("disputes", disputes)):
        if ids:
            await connection.execute(_MARK_SETTLED[table], tenant.merchant_id, tenant.livemode, settlement_id, ids)


_INSERT_BALANCE_TRANSACTION = """
INSERT INTO balance_transactions (id, merchant_id, livemode, type, source, amount, fee, net, currency, status, available_on,
                                  created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $6::bigint - $7::bigint, $8, $9, $10, $11)
"""
# A settlement makes its charges' movements available, on the day it paid them.
_RELEASE_BALANCE_TRANSACTIONS = """
UPDATE balance_transactions SET status = 'available', available_on = $4
WHERE merchant_id = $1 AND livemode = $2 AND type = 'charge' AND status = 'pending' AND source = ANY($3::text[])
"""
_GET_BALANCE_TRANSACTION = "SELECT * FROM balance_transactions WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_BALANCE_TRANSACTION_EXISTS = (
    "SELECT EXISTS (SELECT 1 FROM balance_transactions WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
)
_BALANCE_TRANSACTIONS = """
SELECT * FROM balance_transactions WHERE merchant_id = $1 AND livemode = $2 AND ($3::text IS NULL OR type = $3)
AND ($4::text IS NULL OR source = $4) AND ($5::text IS NULL OR currency = $5)
"""


async def insert_balance_transaction(connection: Connection, tenant: Tenant, values: dict[str, Any]) -> None:
    await connection.execute(
        _INSERT_BALANCE_TRANSACTION,
        values["id"],
        tenant.merchant_id,
        tenant.livemode,
        values["type"],
        values["source"],
        values["amount"],
        values["fee"],
        values["currency"],
        values["status"],
        values["available_on"],
        values["created_at"],
    )


async def release_balance_transactions(
    connection: Connection, tenant: Tenant, sources: list[str], available_on: datetime
) -> None:
    await connection.execute(_RELEASE_BALANCE_TRANSACTIONS, tenant.merchant_id, tenant.livemode, sources, available_on)


async def get_balance_transaction(connection: Connection, tenant: Tenant, transaction_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_GET_BALANCE_TRANSACTION, tenant.merchant_id, tenant.livemode, transaction_id)
    return row


async def balance_transaction_exists(connection: Connection, tenant: Tenant, transaction_id: str) -> bool:
    return bool(await connection.fetchval(_BALANCE_TRANSACTION_EXISTS, tenant.merchant_id, tenant.livemode, transaction_id))


async def page_balance_transactions(
    connection: Connection, tenant: Tenant, request: PageRequest, *, type_: str | None, source: str | None, currency: str | None
) -> Page:
    return await fetch_page(
        connection, _BALANCE_TRANSACTIONS, (tenant.merchant_id, tenant.livemode, type_, source, currency), request
    )


# The payments check (`bastion payments check`), as the owner across merchants.
_CHARGES_REFUNDED_ELSEWISE = """
SELECT c.id, c.amount_refunded, coalesce(sum(r.amount) FILTER (WHERE r.status IN ('pending', 'succeeded')), 0) AS refunds
FROM charges c LEFT JOIN refunds r ON r.charge_id = c.id
GROUP BY c.id HAVING c.amount_refunded <> coalesce(sum(r.amount) FILTER (WHERE r.status IN ('pending', 'succeeded')), 0)
ORDER BY c.id LIMIT 1
"""
_INTENTS_RECEIVED_ELSEWISE = """
SELECT i.id, i.amount_received, coalesce(sum(c.amount_captured), 0) AS captured
FROM payment_intents i LEFT JOIN charges c ON c.payment_intent_id = i.id
GROUP BY i.id HAVING i.amount_received <> coalesce(sum(c.amount_captured), 0)
ORDER BY i.id LIMIT 1
"""
# What the ledger must hold, per merchant, mode and currency.
_EXPECTED_BOOKS = """
WITH captures AS (
    SELECT merchant_id, livemode, currency, sum(amount_captured) AS captured, sum(fee) AS fees
    FROM charges GROUP BY merchant_id, livemode, currency
), refunded AS (
    SELECT merchant_id, livemode, currency, sum(amount) AS refunded
    FROM refunds WHERE status = 'succeeded' GROUP BY merchant_id, livemode, currency
), authorized AS (
    SELECT merchant_id, livemode, currency, sum(amount_capturable) AS authorized
    FROM payment_intents WHERE status = 'requires_capture' GROUP BY merchant_id, livemode, currency
), disputed AS (
    SELECT merchant_id, livemode, currency, sum(fee) AS dispute_fees,
           sum(amount) FILTER (WHERE status NOT IN ('won', 'lost')) AS disputes_open,
           sum(amount) FILTER (WHERE status = 'lost') AS disputes_lost
    FROM disputes GROUP BY merchant_id, livemode, currency
), settled AS (
    SELECT merchant_id, livemode, currency, sum(net) AS settled_net, sum(released) AS released
    FROM settlements GROUP BY merchant_id, livemode, currency
), moved AS (
    SELECT merchant_id, livemode, currency, sum(net) FILTER (WHERE status = 'pending') AS moved_pending,
           sum(net) FILTER (WHERE status = 'available') AS moved_available
    FROM balance_transactions GROUP BY merchant_id, livemode, currency
)
SELECT merchant_id, livemode, currency, coalesce(captured, 0) AS captured, coalesce(fees, 0) AS fees,
       coalesce(refunded, 0) AS refunded, coalesce(authorized, 0) AS authorized,
       coalesce(dispute_fees, 0) AS dispute_fees, coalesce(disputes_open, 0) AS disputes_open,
       coalesce(disputes_lost, 0) AS disputes_lost, coalesce(settled_net, 0) AS settled_net,
       coalesce(released, 0) AS released, coalesce(moved_pending, 0) AS moved_pending,
       coalesce(moved_available, 0) AS moved_available
FROM captures
FULL JOIN refunded USING (merchant_id, livemode, currency)
FULL JOIN authorized USING (merchant_id, livemode, currency)
FULL JOIN disputed USING (merchant_id, livemode, currency)
FULL JOIN settled USING (merchant_id, livemode, currency)
FULL JOIN moved USING (merchant_id, livemode, currency)
ORDER BY merchant_id, livemode, currency
"""
_COUNTS = """
SELECT (SELECT count(*) FROM payment_intents) AS intents, (SELECT count(*) FROM charges) AS charges,
       (SELECT count(*) FROM refunds) AS refunds, (SELECT count(*) FROM disputes) AS disputes,
       (SELECT count(*) FROM settlements) AS settlements
"""


async def charge_refunded_elsewise(connection: Connection) -> AnyRow | None:
    """The first charge whose `amount_refunded` is not the sum of its live refunds."""
    row: AnyRow | None = await connection.fetchrow(_CHARGES_REFUNDED_ELSEWISE)
    return row


async def intent_received_elsewise(connection: Connection) -> AnyRow | None:
    """The first intent whose `amount_received` is not what its charges captured."""
    row: AnyRow | None = await connection.fetchrow(_INTENTS_RECEIVED_ELSEWISE)
    return row


async def expected_books(connection: Connection) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_EXPECTED_BOOKS)
    return rows


async def payment_counts(connection: Connection) -> AnyRow:
    row: AnyRow = await connection.fetchrow(_COUNTS)
    return row


# The janitor's finds across merchants, through functions of the owner (the API's role sees one
# merchant at a time): ids only, each then handled in its merchant's unit of work.
_STALE_AUTHORIZATIONS = "SELECT merchant_id, livemode, id FROM payments_stale_authorizations($1, $2)"
_UNKNOWN_ATTEMPTS = "SELECT merchant_id, livemode, id FROM payments_unknown_attempts($1, $2)"
_OPEN_CHALLENGES = "SELECT merchant_id, livemode, id FROM payments_open_challenges($1, $2)"


async def stale_authorizations(connection: Connection, authorized_before: datetime, count_max: int) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_STALE_AUTHORIZATIONS, authorized_before, count_max)
    return rows


async def unknown_attempts(connection: Connection, answered_before: datetime, count_max: int) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_UNKNOWN_ATTEMPTS, answered_before, count_max)
    return rows


async def open_challenges(connection: Connection, opened_before: datetime, count_max: int) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_OPEN_CHALLENGES, opened_before, count_max)
    return rows


_TAKE_NOTIFICATION = """
INSERT INTO connector_notifications (connector, notification_id, merchant_id, livemode, type, result, received_at)
VALUES ($1, $2, $3, $4, $5, 'ignored', $6)
ON CONFLICT DO NOTHING
RETURNING notification_id
"""
_NOTIFICATION_APPLIED = """
UPDATE connector_notifications SET result = 'applied' WHERE connector = $1 AND notification_id = $2
"""
_CHARGE_INTENT = "SELECT payment_intent_id FROM charges WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_CHARGE_OF_CONNECTOR_REFERENCE = """
SELECT id FROM charges WHERE merchant_id = $1 AND livemode = $2 AND connector_reference = $3 AND status = 'succeeded'
"""
# The intent of a charge that still waits for the connector's word (intents.awaiting_answer's
# rule), read without a lock: an answer heard already, the usual notification, locks nothing.
_AWAITING_INTENT = """
SELECT i.id FROM charges c JOIN payment_intents i ON i.id = c.payment_intent_id AND i.latest_charge_id = c.id
WHERE c.merchant_id = $1 AND c.livemode = $2 AND c.id = $3 AND c.status = 'pending'
AND i.status IN ('processing', 'requires_action')
"""


async def take_notification(
    connection: Connection, tenant: Tenant, *, connector: str, notification_id: str, kind: str, received_at: datetime
) -> bool:
    """Whether this notification is new (and is now recorded); False if it was taken before."""
    taken = await connection.fetchval(
        _TAKE_NOTIFICATION, connector, notification_id, tenant.merchant_id, tenant.livemode, kind, received_at
    )
    return taken is not None


async def notification_applied(connection: Connection, *, connector: str, notification_id: str) -> None:
    await connection.execute(_NOTIFICATION_APPLIED, connector, notification_id)


async def charge_intent_id(connection: Connection, tenant: Tenant, charge_id: str) -> str | None:
    intent_id: str | None = await connection.fetchval(_CHARGE_INTENT, tenant.merchant_id, tenant.livemode, charge_id)
    return intent_id


async def charge_of_connector_reference(connection: Connection, tenant: Tenant, connector_reference: str) -> str | None:
    """The succeeded charge the processor knows by `connector_reference`."""
    charge_id: str | None = await connection.fetchval(
        _CHARGE_OF_CONNECTOR_REFERENCE, tenant.merchant_id, tenant.livemode, connector_reference
    )
    return charge_id


async def awaiting_intent_id(connection: Connection, tenant: Tenant, charge_id: str) -> str | None:
    intent_id: str | None = await connection.fetchval(_AWAITING_INTENT, tenant.merchant_id, tenant.livemode, charge_id)
    return intent_id


# Reviews (reviews.py).

_INSERT_REVIEW = """
INSERT INTO reviews (id, merchant_id, livemode, charge_id, payment_intent_id, decision_id, rule_id, open, created_at)
VALUES ($3, $1, $2, $4, $5, $6, $7, true, $8)
RETURNING *
"""
_REVIEW = "SELECT * FROM reviews WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_REVIEW_FOR_UPDATE = f"{_REVIEW} FOR UPDATE"
_REVIEW_EXISTS = "SELECT EXISTS (SELECT 1 FROM reviews WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
# Paged by fetch_page; a null $3 lists open and closed ones.
_REVIEWS = "SELECT * FROM reviews WHERE merchant_id = $1 AND livemode = $2 AND ($3::boolean IS NULL OR open = $3)"
_CLOSE_REVIEW = """
UPDATE reviews SET open = false, closed_reason = $4, closed_by = $5, closed_at = $6
WHERE merchant_id = $1 AND livemode = $2 AND id = $3 AND open
RETURNING *
"""


async def insert_review(connection: Connection, tenant: Tenant, values: dict[str, Any]) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _INSERT_REVIEW,
        tenant.merchant_id,
        tenant.livemode,
        values["id"],
        values["charge_id"],
        values["payment_intent_id"],
        values["decision_id"],
        values["rule_id"],
        values["created_at"],
    )
    return row


async def get_review(connection: Connection, tenant: Tenant, review_id: str, *, for_update: bool = False) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(
        _REVIEW_FOR_UPDATE if for_update else _REVIEW, tenant.merchant_id, tenant.livemode, review_id
    )
    return row


async def review_exists(connection: Connection, tenant: Tenant, review_id: str) -> bool:
    return bool(await connection.fetchval(_REVIEW_EXISTS, tenant.merchant_id, tenant.livemode, review_id))


async def page_reviews(connection: Connection, tenant: Tenant, request: PageRequest, is_open: bool | None) -> Page:
    return await fetch_page(connection, _REVIEWS, (tenant.merchant_id, tenant.livemode, is_open), request)


async def close_review(
    connection: Connection, tenant: Tenant, review_id: str, *, reason: str, closed_by: str, at: datetime
) -> AnyRow | None:
    """The review closed, or None if it was closed already."""
    row: AnyRow | None = await connection.fetchrow(
        _CLOSE_REVIEW, tenant.merchant_id, tenant.livemode, review_id, reason, closed_by, at
    )
    return row


# Fraud labels for the risk engine's backtests: charges later disputed as fraud, refunded as
# fraud, or whose intent was canceled as fraud (a review rejected).
_FRAUD_CHARGES = """
SELECT c.id FROM charges c
WHERE c.merchant_id = $1 AND c.livemode = $2 AND c.id = ANY($3::text[]) AND (
    EXISTS (SELECT 1 FROM disputes d WHERE d.charge_id = c.id AND d.reason = 'fraudulent')
    OR EXISTS (SELECT 1 FROM refunds r WHERE r.charge_id = c.id AND r.reason = 'fraudulent' AND r.status = 'succeeded')
    OR EXISTS (
        SELECT 1 FROM payment_intents i WHERE i.latest_charge_id = c.id AND i.cancellation_reason = 'fraudulent'
    )
)
"""


async def fraud_charges(connection: Connection, tenant: Tenant, charge_ids: list[str]) -> set[str]:
    return {row["id"] for row in await connection.fetch(_FRAUD_CHARGES, tenant.merchant_id, tenant.livemode, charge_ids)}
