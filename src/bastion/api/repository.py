"""All SQL of the API edge: idempotency keys."""

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.api.tables import idempotency_keys
from bastion.platform.db import AnyRow

_STORED_RESPONSE = select(idempotency_keys.c.fingerprint, idempotency_keys.c.status_code, idempotency_keys.c.response_body).where(
    idempotency_keys.c.key == bindparam("key")
)
_STORE_RESPONSE = insert(idempotency_keys)


async def stored_response(connection: AsyncConnection, key: str) -> AnyRow | None:
    return (await connection.execute(_STORED_RESPONSE, {"key": key})).first()


async def store_response(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(_STORE_RESPONSE, values)


async def delete_expired(connection: AsyncConnection, created_before: datetime, limit: int) -> int:
    columns = (idempotency_keys.c.merchant_id, idempotency_keys.c.livemode, idempotency_keys.c.key)
    victims = select(*columns).where(idempotency_keys.c.created_at < created_before).limit(limit)
    result = await connection.execute(delete(idempotency_keys).where(tuple_(*columns).in_(victims)))
    return int(result.rowcount)
