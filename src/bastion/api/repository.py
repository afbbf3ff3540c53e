"""All SQL of the API edge: idempotency keys."""

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.api.tables import idempotency_keys
from bastion.platform.db import AnyRow


async def try_lock_key(connection: AsyncConnection, lock_id: int) -> bool:
    """A transaction-scoped advisory lock: held while the first request runs, so a
    concurrent duplicate is told at once instead of waiting."""
    result = await connection.execute(text("SELECT pg_try_advisory_xact_lock(:lock_id)"), {"lock_id": lock_id})
    return bool(result.scalar_one())


async def stored_response(connection: AsyncConnection, key: str) -> AnyRow | None:
    query = select(idempotency_keys.c.fingerprint, idempotency_keys.c.status_code, idempotency_keys.c.response_body).where(
        idempotency_keys.c.key == key
    )
    return (await connection.execute(query)).first()


async def store_response(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(insert(idempotency_keys), values)


async def delete_expired(connection: AsyncConnection, created_before: datetime, limit: int) -> int:
    columns = (idempotency_keys.c.merchant_id, idempotency_keys.c.livemode, idempotency_keys.c.key)
    victims = select(*columns).where(idempotency_keys.c.created_at < created_before).limit(limit)
    result = await connection.execute(delete(idempotency_keys).where(tuple_(*columns).in_(victims)))
    return int(result.rowcount)
