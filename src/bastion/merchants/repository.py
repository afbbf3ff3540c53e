"""All SQL of the merchants context."""

from bastion.platform.db import AnyRow, Connection

_INSERT_MERCHANT = "INSERT INTO merchants (id, name) VALUES ($1, $2) RETURNING *"
_MERCHANT_EXISTS = "SELECT EXISTS (SELECT 1 FROM merchants WHERE id = $1)"
_INSERT_API_KEY = """
INSERT INTO api_keys (id, merchant_id, livemode, scopes, secret_hash, publishable_hash, secret_hint)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *
"""
# Per mode: the column is chosen between two constants, never spliced from input.
_ALLOWED_ORIGINS = {
    False: "SELECT allowed_origins FROM merchants WHERE id = $1 FOR UPDATE",
    True: "SELECT live_allowed_origins FROM merchants WHERE id = $1 FOR UPDATE",
}
_SET_ALLOWED_ORIGINS = {
    False: "UPDATE merchants SET allowed_origins = $2 WHERE id = $1",
    True: "UPDATE merchants SET live_allowed_origins = $2 WHERE id = $1",
}
# Through a SECURITY DEFINER function: the API role has no grant on api_keys.
_API_KEY_BY_HASH = "SELECT id, merchant_id, livemode, scopes, secret_hash, revoked FROM api_key_by_hash($1)"


async def insert_merchant(connection: Connection, merchant_id: str, name: str) -> AnyRow:
    row: AnyRow = await connection.fetchrow(_INSERT_MERCHANT, merchant_id, name)
    return row


async def merchant_exists(connection: Connection, merchant_id: str) -> bool:
    return bool(await connection.fetchval(_MERCHANT_EXISTS, merchant_id))


async def insert_api_key(
    connection: Connection,
    *,
    key_id: str,
    merchant_id: str,
    livemode: bool,
    scopes: list[str],
    secret_hash: str,
    publishable_hash: str,
    secret_hint: str,
) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _INSERT_API_KEY, key_id, merchant_id, livemode, scopes, secret_hash, publishable_hash, secret_hint
    )
    return row


async def api_key_by_hash(connection: Connection, secret_hash: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_API_KEY_BY_HASH, secret_hash)
    return row


async def allowed_origins(connection: Connection, merchant_id: str, livemode: bool) -> list[str] | None:
    """The merchant's registered origins in one mode, its row locked for a change; None without such a merchant."""
    origins: list[str] | None = await connection.fetchval(_ALLOWED_ORIGINS[livemode], merchant_id)
    return origins


async def set_allowed_origins(connection: Connection, merchant_id: str, livemode: bool, origins: list[str]) -> None:
    await connection.execute(_SET_ALLOWED_ORIGINS[livemode], merchant_id, origins)
