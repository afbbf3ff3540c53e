"""All SQL of the customers context."""

from datetime import datetime

from bastion.platform.db import AnyRow, Connection, Tenant
from bastion.platform.pagination import Page, PageRequest, fetch_page

_INSERT_CUSTOMER = """
INSERT INTO customers (id, merchant_id, livemode, email, name, phone, description, metadata, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
RETURNING *
"""
# Every read and write names its tenant ($1, $2) even though row-level security would
# filter anyway: isolation holds twice, in the query and in the database.
_GET_CUSTOMER = "SELECT * FROM customers WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_GET_CUSTOMER_FOR_UPDATE = f"{_GET_CUSTOMER} FOR UPDATE"
_UPDATE_CUSTOMER = """
UPDATE customers SET email = $4, name = $5, phone = $6, description = $7, metadata = $8, updated_at = $9
WHERE merchant_id = $1 AND livemode = $2 AND id = $3
RETURNING *
"""
_DELETE_CUSTOMER = "UPDATE customers SET deleted_at = $4, updated_at = $4 WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_LIVE_CUSTOMER_EXISTS = (
    "SELECT EXISTS (SELECT 1 FROM customers WHERE merchant_id = $1 AND livemode = $2 AND id = $3 AND deleted_at IS NULL)"
)
# Paged by fetch_page; a null $3 lists every live customer.
_LIVE_CUSTOMERS = (
    "SELECT * FROM customers WHERE merchant_id = $1 AND livemode = $2 AND deleted_at IS NULL AND ($3::text IS NULL OR email = $3)"
)


async def insert_customer(
    connection: Connection,
    *,
    customer_id: str,
    merchant_id: str,
    livemode: bool,
    email: str | None,
    name: str | None,
    phone: str | None,
    description: str | None,
    metadata: dict[str, str],
    created_at: datetime,
) -> AnyRow:
    """A new customer; `updated_at` starts equal to `created_at`."""
    row: AnyRow = await connection.fetchrow(
        _INSERT_CUSTOMER, customer_id, merchant_id, livemode, email, name, phone, description, metadata, created_at
    )
    return row


async def get_customer(connection: Connection, tenant: Tenant, customer_id: str, *, for_update: bool = False) -> AnyRow | None:
    query = _GET_CUSTOMER_FOR_UPDATE if for_update else _GET_CUSTOMER
    row: AnyRow | None = await connection.fetchrow(query, tenant.merchant_id, tenant.livemode, customer_id)
    return row


async def update_customer(
    connection: Connection,
    tenant: Tenant,
    customer_id: str,
    *,
    email: str | None,
    name: str | None,
    phone: str | None,
    description: str | None,
    metadata: dict[str, str],
    updated_at: datetime,
) -> AnyRow:
    """Write every editable field: the caller holds the row (`get_customer(for_update=True)`)
    and passes the current value of each field it does not change."""
    row: AnyRow = await connection.fetchrow(
        _UPDATE_CUSTOMER, tenant.merchant_id, tenant.livemode, customer_id, email, name, phone, description, metadata, updated_at
    )
    return row


async def delete_customer(connection: Connection, tenant: Tenant, customer_id: str, deleted_at: datetime) -> None:
    """Soft delete: the row stays, marked deleted (and updated) at `deleted_at`."""
    await connection.execute(_DELETE_CUSTOMER, tenant.merchant_id, tenant.livemode, customer_id, deleted_at)


async def live_customer_exists(connection: Connection, tenant: Tenant, customer_id: str) -> bool:
    return bool(await connection.fetchval(_LIVE_CUSTOMER_EXISTS, tenant.merchant_id, tenant.livemode, customer_id))


async def page_customers(connection: Connection, tenant: Tenant, request: PageRequest, email: str | None) -> Page:
    return await fetch_page(connection, _LIVE_CUSTOMERS, (tenant.merchant_id, tenant.livemode, email), request)
