"""All SQL of the API edge: idempotency keys."""

from datetime import datetime

from bastion.platform.db import AnyRow, Connection, Tenant

# Scoped by tenant in the query, and again by row-level security.
_STORED_RESPONSE = (
    "SELECT fingerprint, status_code, response_body FROM idempotency_keys WHERE merchant_id = $1 AND livemode = $2 AND key = $3"
)
_STORE_RESPONSE = """
INSERT INTO idempotency_keys (merchant_id, livemode, key, fingerprint, status_code, response_body)
VALUES ($1, $2, $3, $4, $5, $6)
"""
_DELETE_EXPIRED = """
WITH deleted AS (
    DELETE FROM idempotency_keys
    WHERE (merchant_id, livemode, key) IN (
        SELECT merchant_id, livemode, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2
    )
    RETURNING 1
)
SELECT count(*) FROM deleted
"""


async def stored_response(connection: Connection, tenant: Tenant, key: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_STORED_RESPONSE, tenant.merchant_id, tenant.livemode, key)
    return row


async def store_response(
    connection: Connection,
    *,
    merchant_id: str,
    livemode: bool,
    key: str,
    fingerprint: str,
    status_code: int,
    response_body: str,
) -> None:
    await connection.execute(_STORE_RESPONSE, merchant_id, livemode, key, fingerprint, status_code, response_body)


async def delete_expired(connection: Connection, created_before: datetime, limit: int) -> int:
    """Delete at most `limit` responses stored before `created_before`; how many went."""
    return int(await connection.fetchval(_DELETE_EXPIRED, created_before, limit))
