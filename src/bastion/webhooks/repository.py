"""All SQL of the webhooks context."""

from datetime import datetime
from typing import Any

from bastion.platform.db import AnyRow, Connection, Tenant
from bastion.platform.pagination import Page, PageRequest, fetch_page

_INSERT_ENDPOINT = """
INSERT INTO webhook_endpoints (id, merchant_id, livemode, url, enabled_events, description, metadata, ordered, disabled,
                               secret_sealed, created_at, updated_at)
VALUES ($3, $1, $2, $4, $5, $6, $7, $8, false, $9, $10, $10)
RETURNING *
"""
_GET_ENDPOINT = "SELECT * FROM webhook_endpoints WHERE merchant_id = $1 AND livemode = $2 AND id = $3 AND deleted_at IS NULL"
_GET_ENDPOINT_FOR_UPDATE = f"{_GET_ENDPOINT} FOR UPDATE"
_UPDATE_ENDPOINT = """
UPDATE webhook_endpoints
SET url = $4, enabled_events = $5, description = $6, metadata = $7, ordered = $8, disabled = $9, updated_at = $10
WHERE merchant_id = $1 AND livemode = $2 AND id = $3
RETURNING *
"""
_ROTATE = """
UPDATE webhook_endpoints
SET secret_sealed = $4, previous_secret_sealed = $5, previous_secret_expires_at = $6, updated_at = $7
WHERE merchant_id = $1 AND livemode = $2 AND id = $3
RETURNING *
"""
_DELETE_ENDPOINT = """
UPDATE webhook_endpoints SET deleted_at = $4, updated_at = $4 WHERE merchant_id = $1 AND livemode = $2 AND id = $3
"""
# Held to the transaction's end by a creation: two concurrent ones cannot both pass the limit.
_LOCK_ENDPOINTS = "SELECT pg_advisory_xact_lock(hashtextextended('webhook_endpoints:' || $1 || ':' || $2::boolean::text, 0))"
_COUNT_ENDPOINTS = "SELECT count(*) FROM webhook_endpoints WHERE merchant_id = $1 AND livemode = $2 AND deleted_at IS NULL"
_ENDPOINT_EXISTS = (
    "SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE merchant_id = $1 AND livemode = $2 AND id = $3 AND deleted_at IS NULL)"
)
# Paged by fetch_page.
_ENDPOINTS = "SELECT * FROM webhook_endpoints WHERE merchant_id = $1 AND livemode = $2 AND deleted_at IS NULL"


async def insert_endpoint(
    connection: Connection,
    tenant: Tenant,
    *,
    endpoint_id: str,
    url: str,
    enabled_events: list[str],
    description: str | None,
    metadata: dict[str, str],
    ordered: bool,
    secret_sealed: bytes,
    created_at: datetime,
) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _INSERT_ENDPOINT,
        tenant.merchant_id,
        tenant.livemode,
        endpoint_id,
        url,
        enabled_events,
        description,
        metadata,
        ordered,
        secret_sealed,
        created_at,
    )
    return row


async def get_endpoint(connection: Connection, tenant: Tenant, endpoint_id: str, *, for_update: bool = False) -> AnyRow | None:
    query = _GET_ENDPOINT_FOR_UPDATE if for_update else _GET_ENDPOINT
    row: AnyRow | None = await connection.fetchrow(query, tenant.merchant_id, tenant.livemode, endpoint_id)
    return row


async def update_endpoint(connection: Connection, tenant: Tenant, endpoint_id: str, fields: dict[str, Any]) -> AnyRow:
    """Write every editable field: the caller holds the row and passes the current value of each
    field it does not change."""
    row: AnyRow = await connection.fetchrow(
        _UPDATE_ENDPOINT,
        tenant.merchant_id,
        tenant.livemode,
        endpoint_id,
        fields["url"],
        fields["enabled_events"],
        fields["description"],
        fields["metadata"],
        fields["ordered"],
        fields["disabled"],
        fields["updated_at"],
    )
    return row


async def rotate_secret(
    connection: Connection,
    tenant: Tenant,
    endpoint_id: str,
    *,
    secret_sealed: bytes,
    previous_secret_sealed: bytes,
    previous_secret_expires_at: datetime,
    updated_at: datetime,
) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _ROTATE,
        tenant.merchant_id,
        tenant.livemode,
        endpoint_id,
        secret_sealed,
        previous_secret_sealed,
        previous_secret_expires_at,
        updated_at,
    )
    return row


async def delete_endpoint(connection: Connection, tenant: Tenant, endpoint_id: str, deleted_at: datetime) -> None:
    await connection.execute(_DELETE_ENDPOINT, tenant.merchant_id, tenant.livemode, endpoint_id, deleted_at)


async def count_endpoints(connection: Connection, tenant: Tenant) -> int:
    """The merchant's endpoints in this mode, its creations locked out until this transaction ends."""
    await connection.execute(_LOCK_ENDPOINTS, tenant.merchant_id, tenant.livemode)
    count: int = await connection.fetchval(_COUNT_ENDPOINTS, tenant.merchant_id, tenant.livemode)
    return count


async def endpoint_exists(connection: Connection, tenant: Tenant, endpoint_id: str) -> bool:
    return bool(await connection.fetchval(_ENDPOINT_EXISTS, tenant.merchant_id, tenant.livemode, endpoint_id))


async def page_endpoints(connection: Connection, tenant: Tenant, request: PageRequest) -> Page:
    return await fetch_page(connection, _ENDPOINTS, (tenant.merchant_id, tenant.livemode), request)
