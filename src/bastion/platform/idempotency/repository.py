"""All SQL of idempotency keys: stored responses, and the recovery points of phased commands.
Every statement names the tenant, and row-level security checks it again."""

from datetime import datetime
from typing import Any

from bastion.platform.db import AnyRow, Connection, Tenant

_STORED = """
SELECT fingerprint, status_code, response_body, recovery_point, command, state, locked_at
FROM idempotency_keys WHERE merchant_id = $1 AND livemode = $2 AND key = $3
"""
_STORE_RESPONSE = """
INSERT INTO idempotency_keys (merchant_id, livemode, key, fingerprint, status_code, response_body)
VALUES ($1, $2, $3, $4, $5, $6)
"""
_CLAIM = """
INSERT INTO idempotency_keys (merchant_id, livemode, key, fingerprint, recovery_point, command, state, locked_at)
VALUES ($1, $2, $3, $4, 'started', $5, $6, $7)
ON CONFLICT DO NOTHING
RETURNING true
"""
# Compare-and-set on `locked_at`: of several takers of an abandoned command, one wins.
_TAKE_OVER = """
UPDATE idempotency_keys SET locked_at = $5
WHERE merchant_id = $1 AND livemode = $2 AND key = $3 AND recovery_point = 'started' AND locked_at IS NOT DISTINCT FROM $4
RETURNING state
"""
_FINISH = """
UPDATE idempotency_keys SET recovery_point = 'finished', status_code = $4, response_body = $5, locked_at = NULL
WHERE merchant_id = $1 AND livemode = $2 AND key = $3 AND recovery_point = 'started'
"""
_STARTED_KEY = "merchant_id = $1 AND livemode = $2 AND key = $3 AND recovery_point = 'started'"
_RELEASE = f"UPDATE idempotency_keys SET locked_at = NULL WHERE {_STARTED_KEY}"
_FORGET = f"DELETE FROM idempotency_keys WHERE {_STARTED_KEY}"
_ABANDONED = "SELECT merchant_id, livemode, key FROM abandoned_idempotency_keys($1, $2)"
_DELETE_EXPIRED = """
WITH deleted AS (
    DELETE FROM idempotency_keys
    WHERE (merchant_id, livemode, key) IN (
        SELECT merchant_id, livemode, key FROM idempotency_keys
        WHERE created_at < $1 AND recovery_point = 'finished'
        LIMIT $2
    )
    RETURNING 1
)
SELECT count(*) FROM deleted
"""


async def stored(connection: Connection, tenant: Tenant, key: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_STORED, tenant.merchant_id, tenant.livemode, key)
    return row


async def store_response(
    connection: Connection, tenant: Tenant, *, key: str, fingerprint: str, status_code: int, response_body: str
) -> None:
    await connection.execute(_STORE_RESPONSE, tenant.merchant_id, tenant.livemode, key, fingerprint, status_code, response_body)


async def claim(
    connection: Connection, tenant: Tenant, *, key: str, fingerprint: str, command: str, state: dict[str, Any], at: datetime
) -> bool:
    """Record a phased command as started and held from `at`; False if the key was taken."""
    claimed = await connection.fetchval(_CLAIM, tenant.merchant_id, tenant.livemode, key, fingerprint, command, state, at)
    return claimed is not None


async def take_over(
    connection: Connection, tenant: Tenant, key: str, *, locked_at: datetime | None, at: datetime
) -> dict[str, Any] | None:
    """Hold a started command from `at` if it is still held since `locked_at`: its state, or None."""
    state: dict[str, Any] | None = await connection.fetchval(_TAKE_OVER, tenant.merchant_id, tenant.livemode, key, locked_at, at)
    return state


async def finish(connection: Connection, tenant: Tenant, key: str, *, status_code: int, response_body: str) -> None:
    await connection.execute(_FINISH, tenant.merchant_id, tenant.livemode, key, status_code, response_body)


async def release(connection: Connection, tenant: Tenant, key: str) -> None:
    await connection.execute(_RELEASE, tenant.merchant_id, tenant.livemode, key)


async def forget(connection: Connection, tenant: Tenant, key: str) -> None:
    await connection.execute(_FORGET, tenant.merchant_id, tenant.livemode, key)


async def abandoned(connection: Connection, *, locked_before: datetime, count_max: int) -> list[AnyRow]:
    """Started commands of any merchant that nobody holds, or held since before `locked_before`."""
    return list(await connection.fetch(_ABANDONED, locked_before, count_max))


async def delete_expired(connection: Connection, created_before: datetime, limit: int) -> int:
    """Delete at most `limit` finished keys made before `created_before`; how many went (started ones wait for their end)."""
    return int(await connection.fetchval(_DELETE_EXPIRED, created_before, limit))
