"""All SQL of the risk context."""

from datetime import datetime
from typing import Any

from bastion.platform.db import AnyRow, Connection, Tenant
from bastion.platform.pagination import Page, PageRequest, fetch_page

# Every change of a merchant's rulesets and lists, in one mode, takes this lock first: versions
# are numbered without gaps or twins, a slot (live, shadow) changes hands in one order, and a
# list cannot be deleted while a ruleset that names it is being activated.
_LOCK_CONFIGURATION = "SELECT pg_advisory_xact_lock(hashtextextended('risk:' || $1 || ':' || $2::boolean::text, 0))"


async def lock_configuration(connection: Connection, tenant: Tenant) -> None:
    await connection.execute(_LOCK_CONFIGURATION, tenant.merchant_id, tenant.livemode)


# Rulesets.

_INSERT_RULESET = """
INSERT INTO risk_rulesets (id, merchant_id, livemode, version, status, description, rules, created_at)
SELECT $3, $1, $2, coalesce(max(version), 0) + 1, 'draft', $4, $5, $6
FROM risk_rulesets WHERE merchant_id = $1 AND livemode = $2
RETURNING *
"""
_RULESET = "SELECT * FROM risk_rulesets WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_RULESET_FOR_UPDATE = f"{_RULESET} FOR UPDATE"
_RULESET_EXISTS = "SELECT EXISTS (SELECT 1 FROM risk_rulesets WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
_RULESET_IN_STATUS = "SELECT * FROM risk_rulesets WHERE merchant_id = $1 AND livemode = $2 AND status = $3"
# Paged by fetch_page; a null $3 lists every status.
_RULESETS = "SELECT * FROM risk_rulesets WHERE merchant_id = $1 AND livemode = $2 AND ($3::text IS NULL OR status = $3)"
_SET_RULESET_STATUS = """
UPDATE risk_rulesets
SET status = $4,
    activated_at = CASE WHEN $4 IN ('live', 'shadow') THEN $5 ELSE activated_at END,
    retired_at = CASE WHEN $4 = 'retired' THEN $5 ELSE retired_at END
WHERE merchant_id = $1 AND livemode = $2 AND id = $3
RETURNING *
"""


async def insert_ruleset(
    connection: Connection,
    tenant: Tenant,
    *,
    ruleset_id: str,
    description: str | None,
    rules: list[dict[str, str]],
    created_at: datetime,
) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _INSERT_RULESET, tenant.merchant_id, tenant.livemode, ruleset_id, description, rules, created_at
    )
    return row


async def get_ruleset(connection: Connection, tenant: Tenant, ruleset_id: str, *, for_update: bool = False) -> AnyRow | None:
    query = _RULESET_FOR_UPDATE if for_update else _RULESET
    row: AnyRow | None = await connection.fetchrow(query, tenant.merchant_id, tenant.livemode, ruleset_id)
    return row


async def ruleset_exists(connection: Connection, tenant: Tenant, ruleset_id: str) -> bool:
    return bool(await connection.fetchval(_RULESET_EXISTS, tenant.merchant_id, tenant.livemode, ruleset_id))


async def ruleset_in_status(connection: Connection, tenant: Tenant, status: str) -> AnyRow | None:
    """The live or the shadow ruleset, if there is one."""
    row: AnyRow | None = await connection.fetchrow(_RULESET_IN_STATUS, tenant.merchant_id, tenant.livemode, status)
    return row


async def page_rulesets(connection: Connection, tenant: Tenant, request: PageRequest, status: str | None) -> Page:
    return await fetch_page(connection, _RULESETS, (tenant.merchant_id, tenant.livemode, status), request)


async def set_ruleset_status(connection: Connection, tenant: Tenant, ruleset_id: str, status: str, at: datetime) -> AnyRow:
    row: AnyRow = await connection.fetchrow(_SET_RULESET_STATUS, tenant.merchant_id, tenant.livemode, ruleset_id, status, at)
    return row


# Lists and their items.

_INSERT_LIST = """
INSERT INTO risk_lists (id, merchant_id, livemode, alias, name, item_type, created_at)
VALUES ($3, $1, $2, $4, $5, $6, $7)
ON CONFLICT DO NOTHING
RETURNING *
"""
_LIST = "SELECT * FROM risk_lists WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_LIST_EXISTS = "SELECT EXISTS (SELECT 1 FROM risk_lists WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
_LIST_COUNT = "SELECT count(*) FROM risk_lists WHERE merchant_id = $1 AND livemode = $2"
_LIST_KINDS = "SELECT alias, item_type FROM risk_lists WHERE merchant_id = $1 AND livemode = $2"
_LISTS = "SELECT * FROM risk_lists WHERE merchant_id = $1 AND livemode = $2"
_DELETE_LIST = "DELETE FROM risk_lists WHERE merchant_id = $1 AND livemode = $2 AND id = $3"

_INSERT_ITEM = """
INSERT INTO risk_list_items (id, merchant_id, livemode, list_id, value, created_at)
VALUES ($3, $1, $2, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING *
"""
_ITEM = "SELECT * FROM risk_list_items WHERE merchant_id = $1 AND livemode = $2 AND list_id = $3 AND id = $4"
_ITEM_BY_VALUE = "SELECT * FROM risk_list_items WHERE merchant_id = $1 AND livemode = $2 AND list_id = $3 AND value = $4"
_ITEM_EXISTS = (
    "SELECT EXISTS (SELECT 1 FROM risk_list_items WHERE merchant_id = $1 AND livemode = $2 AND list_id = $3 AND id = $4)"
)
_ITEM_COUNT = "SELECT count(*) FROM risk_list_items WHERE merchant_id = $1 AND livemode = $2 AND list_id = $3"
# Paged by fetch_page.
_ITEMS = "SELECT * FROM risk_list_items WHERE merchant_id = $1 AND livemode = $2 AND list_id = $3"
_DELETE_ITEM = "DELETE FROM risk_list_items WHERE merchant_id = $1 AND livemode = $2 AND list_id = $3 AND id = $4"


async def insert_list(connection: Connection, tenant: Tenant, values: dict[str, Any]) -> AnyRow | None:
    """The new list, or None when its alias is taken."""
    row: AnyRow | None = await connection.fetchrow(
        _INSERT_LIST,
        tenant.merchant_id,
        tenant.livemode,
        values["id"],
        values["alias"],
        values["name"],
        values["item_type"],
        values["created_at"],
    )
    return row


async def get_list(connection: Connection, tenant: Tenant, list_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_LIST, tenant.merchant_id, tenant.livemode, list_id)
    return row


async def list_exists(connection: Connection, tenant: Tenant, list_id: str) -> bool:
    return bool(await connection.fetchval(_LIST_EXISTS, tenant.merchant_id, tenant.livemode, list_id))


async def count_lists(connection: Connection, tenant: Tenant) -> int:
    count: int = await connection.fetchval(_LIST_COUNT, tenant.merchant_id, tenant.livemode)
    return count


async def list_kinds(connection: Connection, tenant: Tenant) -> dict[str, str]:
    """alias -> item_type of every list of the merchant in this mode."""
    rows = await connection.fetch(_LIST_KINDS, tenant.merchant_id, tenant.livemode)
    return {row["alias"]: row["item_type"] for row in rows}


async def page_lists(connection: Connection, tenant: Tenant, request: PageRequest) -> Page:
    return await fetch_page(connection, _LISTS, (tenant.merchant_id, tenant.livemode), request)


async def delete_list(connection: Connection, tenant: Tenant, list_id: str) -> None:
    """The list and, by the foreign key's cascade, its items."""
    await connection.execute(_DELETE_LIST, tenant.merchant_id, tenant.livemode, list_id)


async def insert_item(connection: Connection, tenant: Tenant, values: dict[str, Any]) -> AnyRow | None:
    """The new item, or None when the list has this value already."""
    row: AnyRow | None = await connection.fetchrow(
        _INSERT_ITEM,
        tenant.merchant_id,
        tenant.livemode,
        values["id"],
        values["list_id"],
        values["value"],
        values["created_at"],
    )
    return row


async def get_item(connection: Connection, tenant: Tenant, list_id: str, item_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_ITEM, tenant.merchant_id, tenant.livemode, list_id, item_id)
    return row


async def item_by_value(connection: Connection, tenant: Tenant, list_id: str, value: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_ITEM_BY_VALUE, tenant.merchant_id, tenant.livemode, list_id, value)
    return row


async def item_exists(connection: Connection, tenant: Tenant, list_id: str, item_id: str) -> bool:
    return bool(await connection.fetchval(_ITEM_EXISTS, tenant.merchant_id, tenant.livemode, list_id, item_id))


async def count_items(connection: Connection, tenant: Tenant, list_id: str) -> int:
    count: int = await connection.fetchval(_ITEM_COUNT, tenant.merchant_id, tenant.livemode, list_id)
    return count


async def page_items(connection: Connection, tenant: Tenant, list_id: str, request: PageRequest) -> Page:
    return await fetch_page(connection, _ITEMS, (tenant.merchant_id, tenant.livemode, list_id), request)


async def delete_item(connection: Connection, tenant: Tenant, list_id: str, item_id: str) -> None:
    await connection.execute(_DELETE_ITEM, tenant.merchant_id, tenant.livemode, list_id, item_id)
