"""All SQL of the sandbox acquirer, on its own schema."""

from datetime import date, datetime
from typing import Any

from bastion.platform.db import AnyRow, Connection

# One request per key at a time, across acquirer processes: the second waits for the first's answer.
_LOCK_KEY = "SELECT pg_advisory_xact_lock(hashtextextended('acquirer:' || $1, 0))"
_STORED = "SELECT * FROM acquirer.requests WHERE key = $1"
_STORE = """
INSERT INTO acquirer.requests (key, fingerprint, status_code, body, created_at) VALUES ($1, $2, $3, $4, $5)
"""
_INSERT_PAYMENT = """
INSERT INTO acquirer.payments (id, merchant, reference, amount, currency, status, decline_code, decline_message,
                               card_last4, amount_captured, amount_refunded, capture, challenge_url, return_url,
                               dispute_reason, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12, $13, $14, $15, $15)
ON CONFLICT (merchant, reference) DO NOTHING
RETURNING *
"""
_PAYMENT = "SELECT * FROM acquirer.payments WHERE id = $1"
_PAYMENT_FOR_UPDATE = "SELECT * FROM acquirer.payments WHERE id = $1 FOR UPDATE"
_PAYMENT_BY_REFERENCE = "SELECT * FROM acquirer.payments WHERE merchant = $1 AND reference = $2"
_SET_STATUS = """
UPDATE acquirer.payments SET status = $2, amount_captured = $3, updated_at = $4, challenge_url = NULL
WHERE id = $1 RETURNING *
"""
_DECLINE = """
UPDATE acquirer.payments SET status = 'declined', decline_code = $2, decline_message = $3, updated_at = $4,
                             challenge_url = NULL
WHERE id = $1 RETURNING *
"""
_INSERT_REFUND = """
INSERT INTO acquirer.refunds (id, payment_id, reference, amount, status, created_at)
VALUES ($1, $2, $3, $4, 'succeeded', $5)
ON CONFLICT (payment_id, reference) DO NOTHING
RETURNING *
"""
_REFUND_BY_REFERENCE = "SELECT * FROM acquirer.refunds WHERE payment_id = $1 AND reference = $2"
_ADD_REFUNDED = "UPDATE acquirer.payments SET amount_refunded = amount_refunded + $2, updated_at = $3 WHERE id = $1"


async def lock_key(connection: Connection, key: str) -> None:
    await connection.execute(_LOCK_KEY, key)


async def stored_request(connection: Connection, key: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_STORED, key)
    return row


async def store_request(
    connection: Connection, key: str, *, fingerprint: str, status_code: int, body: dict[str, Any], moment: datetime
) -> None:
    await connection.execute(_STORE, key, fingerprint, status_code, body, moment)


async def insert_payment(connection: Connection, values: dict[str, Any], moment: datetime) -> AnyRow | None:
    """The new payment, or None if the merchant's reference has one already."""
    row: AnyRow | None = await connection.fetchrow(
        _INSERT_PAYMENT,
        values["id"],
        values["merchant"],
        values["reference"],
        values["amount"],
        values["currency"],
        values["status"],
        values["decline_code"],
        values["decline_message"],
        values["card_last4"],
        values["amount_captured"],
        values["capture"],
        values["challenge_url"],
        values["return_url"],
        values["dispute_reason"],
        moment,
    )
    return row


async def payment(connection: Connection, payment_id: str, *, for_update: bool = False) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_PAYMENT_FOR_UPDATE if for_update else _PAYMENT, payment_id)
    return row


async def payment_by_reference(connection: Connection, merchant: str, reference: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_PAYMENT_BY_REFERENCE, merchant, reference)
    return row


async def set_status(connection: Connection, payment_id: str, status: str, amount_captured: int, moment: datetime) -> AnyRow:
    row: AnyRow = await connection.fetchrow(_SET_STATUS, payment_id, status, amount_captured, moment)
    return row


async def decline(connection: Connection, payment_id: str, code: str, message: str, moment: datetime) -> AnyRow:
    row: AnyRow = await connection.fetchrow(_DECLINE, payment_id, code, message, moment)
    return row


async def insert_refund(
    connection: Connection, refund_id: str, payment_id: str, *, reference: str, amount: int, moment: datetime
) -> AnyRow | None:
    """The new refund (added to the payment's refunded amount), or None if the reference has one already."""
    row: AnyRow | None = await connection.fetchrow(_INSERT_REFUND, refund_id, payment_id, reference, amount, moment)
    if row is not None:
        await connection.execute(_ADD_REFUNDED, payment_id, amount, moment)
    return row


async def refund_by_reference(connection: Connection, payment_id: str, reference: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_REFUND_BY_REFERENCE, payment_id, reference)
    return row


_INSERT_NOTIFICATION = """
INSERT INTO acquirer.notifications (id, type, body, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, 0, $4, $4)
"""
# Due notifications, claimed for `lease` so that two delivery loops do not send one twice at once.
_CLAIM_DUE = """
UPDATE acquirer.notifications SET attempts = attempts + 1, next_attempt_at = $2
WHERE id IN (
    SELECT id FROM acquirer.notifications
    WHERE delivered_at IS NULL AND next_attempt_at <= $1 AND attempts < $3
    ORDER BY next_attempt_at, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
RETURNING *
"""
_DELIVERED = "UPDATE acquirer.notifications SET delivered_at = $2, last_error = NULL WHERE id = $1"
_NOT_DELIVERED = "UPDATE acquirer.notifications SET next_attempt_at = $2, last_error = $3 WHERE id = $1"


async def insert_notification(
    connection: Connection, notification_id: str, kind: str, body: dict[str, Any], moment: datetime
) -> None:
    await connection.execute(_INSERT_NOTIFICATION, notification_id, kind, body, moment)


async def claim_due_notifications(
    connection: Connection, now: datetime, *, lease_until: datetime, attempts_max: int, limit: int
) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_CLAIM_DUE, now, lease_until, attempts_max, limit)
    return sorted(rows, key=lambda row: (row["created_at"], row["id"]))


async def notification_delivered(connection: Connection, notification_id: str, moment: datetime) -> None:
    await connection.execute(_DELIVERED, notification_id, moment)


async def notification_not_delivered(connection: Connection, notification_id: str, retry_at: datetime, error: str) -> None:
    await connection.execute(_NOT_DELIVERED, notification_id, retry_at, error)


# Challenges nobody answered in time, declined as the issuer's would be.
_EXPIRE_CHALLENGES = """
UPDATE acquirer.payments SET status = 'declined', decline_code = $2, decline_message = $3, updated_at = $4,
                             challenge_url = NULL
WHERE id IN (
    SELECT id FROM acquirer.payments WHERE status = 'requires_action' AND created_at < $1
    ORDER BY created_at LIMIT $5 FOR UPDATE SKIP LOCKED
)
RETURNING *
"""


async def expire_challenges(
    connection: Connection, opened_before: datetime, *, code: str, message: str, moment: datetime, limit: int
) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_EXPIRE_CHALLENGES, opened_before, code, message, moment, limit)
    return rows


_INSERT_DISPUTE = """
INSERT INTO acquirer.disputes (id, payment_id, amount, currency, reason, status, evidence, evidence_due_by,
                               created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 'needs_response', '{}', $6, $7, $7)
"""
# A dispute with its payment's merchant and Bastion's reference, which its notifications name.
_DISPUTE = """
SELECT d.*, p.merchant, p.reference FROM acquirer.disputes d JOIN acquirer.payments p ON p.id = d.payment_id
WHERE d.id = $1
"""
_DISPUTE_FOR_UPDATE = _DISPUTE + " FOR UPDATE OF d"
_UPDATE_DISPUTE = """
UPDATE acquirer.disputes SET status = $2, evidence = $3, submitted_at = $4, updated_at = $5 WHERE id = $1
"""
# Disputes whose evidence has been in review long enough for the issuer to decide.
_REVIEWED = """
SELECT id FROM acquirer.disputes WHERE status = 'under_review' AND submitted_at < $1
ORDER BY submitted_at LIMIT $2 FOR UPDATE SKIP LOCKED
"""


async def insert_dispute(
    connection: Connection,
    dispute_id: str,
    payment: AnyRow,
    *,
    amount: int,
    reason: str,
    due_by: datetime,
    moment: datetime,
) -> None:
    await connection.execute(_INSERT_DISPUTE, dispute_id, payment["id"], amount, payment["currency"], reason, due_by, moment)


async def dispute(connection: Connection, dispute_id: str, *, for_update: bool = False) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_DISPUTE_FOR_UPDATE if for_update else _DISPUTE, dispute_id)
    return row


async def update_dispute(
    connection: Connection,
    dispute_id: str,
    *,
    status: str,
    evidence: dict[str, str],
    submitted_at: datetime | None,
    moment: datetime,
) -> None:
    await connection.execute(_UPDATE_DISPUTE, dispute_id, status, evidence, submitted_at, moment)


async def reviewed_disputes(connection: Connection, submitted_before: datetime, limit: int) -> list[str]:
    """The ids of disputes in review since before `submitted_before`, locked, a batch at most."""
    return [row["id"] for row in await connection.fetch(_REVIEWED, submitted_before, limit)]


# One settlement run at a time, across the CLI and the acquirer's daily round.
_LOCK_SETTLEMENT = "SELECT pg_advisory_xact_lock(hashtextextended('acquirer:settlement', 0))"
# Every item not settled yet: captures, refunds and lost disputes, oldest first.
_UNSETTLED = """
SELECT * FROM (
    SELECT 'capture' AS kind, p.id, p.merchant, p.currency, p.reference, p.amount_captured AS amount, p.updated_at AS at
    FROM acquirer.payments p WHERE p.status = 'captured' AND p.settlement_id IS NULL
    UNION ALL
    SELECT 'refund', r.id, p.merchant, p.currency, r.reference, r.amount, r.created_at
    FROM acquirer.refunds r JOIN acquirer.payments p ON p.id = r.payment_id WHERE r.settlement_id IS NULL
    UNION ALL
    SELECT 'dispute', d.id, p.merchant, d.currency, p.reference, d.amount, d.updated_at
    FROM acquirer.disputes d JOIN acquirer.payments p ON p.id = d.payment_id WHERE d.status = 'lost' AND d.settlement_id IS NULL
) items
ORDER BY at, id
LIMIT $1
"""
_INSERT_SETTLEMENT = """
INSERT INTO acquirer.settlements (id, merchant, currency, settled_on, net, item_count, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
_SETTLE = {
    "capture": "UPDATE acquirer.payments SET settlement_id = $1 WHERE id = ANY($2::text[])",
    "refund": "UPDATE acquirer.refunds SET settlement_id = $1 WHERE id = ANY($2::text[])",
    "dispute": "UPDATE acquirer.disputes SET settlement_id = $1 WHERE id = ANY($2::text[])",
}
# A day's settlements, line by line, amounts signed as they count for the merchant.
_REPORT = """
SELECT s.id AS settlement, s.merchant, s.currency, 'capture' AS type, p.reference, p.id AS acquirer_id,
       p.amount_captured AS amount
FROM acquirer.settlements s JOIN acquirer.payments p ON p.settlement_id = s.id WHERE s.settled_on = $1
UNION ALL
SELECT s.id, s.merchant, s.currency, 'refund', r.reference, r.id, -r.amount
FROM acquirer.settlements s JOIN acquirer.refunds r ON r.settlement_id = s.id WHERE s.settled_on = $1
UNION ALL
SELECT s.id, s.merchant, s.currency, 'dispute', p.reference, d.id, -d.amount
FROM acquirer.settlements s JOIN acquirer.disputes d ON d.settlement_id = s.id JOIN acquirer.payments p ON p.id = d.payment_id
WHERE s.settled_on = $1
ORDER BY settlement, type, reference
"""


async def unsettled_items(connection: Connection, limit: int) -> list[AnyRow]:
    """Every item not settled yet, a batch at most, after taking the settlement's lock."""
    await connection.execute(_LOCK_SETTLEMENT)
    rows: list[AnyRow] = await connection.fetch(_UNSETTLED, limit)
    return rows


async def insert_settlement(
    connection: Connection, settlement_id: str, merchant: str, currency: str, *, net: int, items: list[AnyRow], moment: datetime
) -> None:
    await connection.execute(_INSERT_SETTLEMENT, settlement_id, merchant, currency, moment.date(), net, len(items), moment)
    for kind, statement in _SETTLE.items():
        ids = [item["id"] for item in items if item["kind"] == kind]
        if ids:
            await connection.execute(statement, settlement_id, ids)


async def settlement_report(connection: Connection, day: date) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_REPORT, day)
    return rows
