"""All SQL of the connectors context."""

from datetime import datetime

from bastion.connectors.secrets import SealedCredentials
from bastion.platform.db import AnyRow, Connection, Tenant
from bastion.platform.pagination import Page, PageRequest, fetch_page

_INSERT_ACCOUNT = """
INSERT INTO connector_accounts (id, merchant_id, livemode, connector, label, metadata, base_url, credentials_masked,
                                credentials_sealed, data_key_sealed, algorithm, key_purpose, disabled, created_at, updated_at)
VALUES ($3, $1, $2, $4, $5, $6, $7, $8, $9, $10, $11, $12, false, $13, $13)
RETURNING *
"""
_GET_ACCOUNT = "SELECT * FROM connector_accounts WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_GET_ACCOUNT_FOR_UPDATE = f"{_GET_ACCOUNT} FOR UPDATE"
_UPDATE_ACCOUNT = """
UPDATE connector_accounts SET label = $4, metadata = $5, updated_at = $6
WHERE merchant_id = $1 AND livemode = $2 AND id = $3
RETURNING *
"""
_DISABLE_ACCOUNT = """
UPDATE connector_accounts SET disabled = true, disabled_at = $4, updated_at = $4
WHERE merchant_id = $1 AND livemode = $2 AND id = $3
RETURNING *
"""
# Held to the transaction's end by a creation: two concurrent ones cannot both pass the limit.
_LOCK_ACCOUNTS = "SELECT pg_advisory_xact_lock(hashtextextended('connector_accounts:' || $1 || ':' || $2::boolean::text, 0))"
_COUNT_ENABLED = "SELECT count(*) FROM connector_accounts WHERE merchant_id = $1 AND livemode = $2 AND NOT disabled"
_ACCOUNT_EXISTS = f"SELECT EXISTS ({_GET_ACCOUNT})"
_OLDEST_ENABLED = (
    "SELECT * FROM connector_accounts WHERE merchant_id = $1 AND livemode = $2 AND NOT disabled ORDER BY created_at, id LIMIT 1"
)
_OWNER = "SELECT merchant_id, livemode, connector FROM connector_account_owner($1)"
_ENABLED_AMONG = (
    "SELECT id FROM connector_accounts WHERE merchant_id = $1 AND livemode = $2 AND id = ANY($3::text[]) AND NOT disabled"
)
# Paged by fetch_page.
_ACCOUNTS = "SELECT * FROM connector_accounts WHERE merchant_id = $1 AND livemode = $2"


async def insert_account(
    connection: Connection,
    tenant: Tenant,
    *,
    account_id: str,
    connector: str,
    label: str | None,
    metadata: dict[str, str],
    base_url: str,
    credentials_masked: dict[str, str],
    sealed: SealedCredentials,
    created_at: datetime,
) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _INSERT_ACCOUNT,
        tenant.merchant_id,
        tenant.livemode,
        account_id,
        connector,
        label,
        metadata,
        base_url,
        credentials_masked,
        sealed.credentials_sealed,
        sealed.data_key_sealed,
        sealed.algorithm,
        sealed.key_purpose,
        created_at,
    )
    return row


async def get_account(connection: Connection, tenant: Tenant, account_id: str, *, for_update: bool = False) -> AnyRow | None:
    query = _GET_ACCOUNT_FOR_UPDATE if for_update else _GET_ACCOUNT
    row: AnyRow | None = await connection.fetchrow(query, tenant.merchant_id, tenant.livemode, account_id)
    return row


async def update_account(
    connection: Connection, tenant: Tenant, account_id: str, *, label: str | None, metadata: dict[str, str], updated_at: datetime
) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _UPDATE_ACCOUNT, tenant.merchant_id, tenant.livemode, account_id, label, metadata, updated_at
    )
    return row


async def disable_account(connection: Connection, tenant: Tenant, account_id: str, disabled_at: datetime) -> AnyRow:
    row: AnyRow = await connection.fetchrow(_DISABLE_ACCOUNT, tenant.merchant_id, tenant.livemode, account_id, disabled_at)
    return row


async def count_enabled(connection: Connection, tenant: Tenant) -> int:
    """The merchant's enabled accounts in this mode, its creations locked out until this transaction ends."""
    await connection.execute(_LOCK_ACCOUNTS, tenant.merchant_id, tenant.livemode)
    count: int = await connection.fetchval(_COUNT_ENABLED, tenant.merchant_id, tenant.livemode)
    return count


async def account_exists(connection: Connection, tenant: Tenant, account_id: str) -> bool:
    return bool(await connection.fetchval(_ACCOUNT_EXISTS, tenant.merchant_id, tenant.livemode, account_id))


async def enabled_among(connection: Connection, tenant: Tenant, account_ids: list[str]) -> set[str]:
    return {row["id"] for row in await connection.fetch(_ENABLED_AMONG, tenant.merchant_id, tenant.livemode, account_ids)}


async def page_accounts(connection: Connection, tenant: Tenant, request: PageRequest) -> Page:
    return await fetch_page(connection, _ACCOUNTS, (tenant.merchant_id, tenant.livemode), request)


async def oldest_enabled(connection: Connection, tenant: Tenant) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_OLDEST_ENABLED, tenant.merchant_id, tenant.livemode)
    return row


async def account_owner(connection: Connection, account_id: str) -> AnyRow | None:
    """The account's merchant, mode and connector, whoever's it is (a security-definer function)."""
    row: AnyRow | None = await connection.fetchrow(_OWNER, account_id)
    return row
