"""All SQL of the merchants context."""

from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.merchants.tables import api_keys, merchants
from bastion.platform.db import AnyRow


async def insert_merchant(connection: AsyncConnection, values: dict[str, Any]) -> AnyRow:
    row: AnyRow = (await connection.execute(insert(merchants).values(values).returning(merchants))).one()
    return row


async def merchant_exists(connection: AsyncConnection, merchant_id: str) -> bool:
    return (await connection.execute(select(merchants.c.id).where(merchants.c.id == merchant_id))).first() is not None


async def insert_api_key(connection: AsyncConnection, values: dict[str, Any]) -> AnyRow:
    row: AnyRow = (await connection.execute(insert(api_keys).values(values).returning(api_keys))).one()
    return row


async def api_key_by_hash(connection: AsyncConnection, secret_hash: str) -> AnyRow | None:
    # Through a SECURITY DEFINER function: the API role has no grant on api_keys.
    statement = text("SELECT id, merchant_id, livemode, scopes, secret_hash, revoked FROM api_key_by_hash(:secret_hash)")
    return (await connection.execute(statement, {"secret_hash": secret_hash})).first()
