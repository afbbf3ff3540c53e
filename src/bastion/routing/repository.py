"""All SQL of the routing context."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bastion.platform.db import AnyRow, Connection, Tenant
from bastion.platform.pagination import Page, PageRequest, fetch_page

# Every change of a merchant's routing rules, in one mode, takes this lock first: versions are
# numbered without gaps or twins, and the live place changes hands in one order.
_LOCK_RULES = "SELECT pg_advisory_xact_lock(hashtextextended('routing:' || $1 || ':' || $2::boolean::text, 0))"
_INSERT_RULES = """
INSERT INTO routing_rules (id, merchant_id, livemode, version, status, description, rules, default_accounts, max_attempts,
                           metadata, created_at)
SELECT $3, $1, $2, coalesce(max(version), 0) + 1, 'draft', $4, $5, $6, $7, $8, $9
FROM routing_rules WHERE merchant_id = $1 AND livemode = $2
RETURNING *
"""
_RULES = "SELECT * FROM routing_rules WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_RULES_FOR_UPDATE = f"{_RULES} FOR UPDATE"
_RULES_EXIST = f"SELECT EXISTS ({_RULES})"
_LIVE_RULES = "SELECT * FROM routing_rules WHERE merchant_id = $1 AND livemode = $2 AND status = 'live'"
# Paged by fetch_page.
_ALL_RULES = "SELECT * FROM routing_rules WHERE merchant_id = $1 AND livemode = $2"
_SET_STATUS = """
UPDATE routing_rules
SET status = $4,
    activated_at = CASE WHEN $4 = 'live' THEN $5 ELSE activated_at END,
    retired_at = CASE WHEN $4 = 'retired' THEN $5 ELSE retired_at END
WHERE merchant_id = $1 AND livemode = $2 AND id = $3
RETURNING *
"""

# One outcome in its bucket's stripe; concurrent ones on the same row add up under its lock.
_RECORD_OUTCOME = """
INSERT INTO routing_outcomes AS o (merchant_id, livemode, account_id, currency, card_brand, bucket_start, stripe, attempts,
                                   successes)
VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)
ON CONFLICT (merchant_id, livemode, account_id, currency, card_brand, bucket_start, stripe)
DO UPDATE SET attempts = o.attempts + 1, successes = o.successes + excluded.successes
"""
_OUTCOMES = """
SELECT account_id, sum(attempts)::bigint AS attempts, sum(successes)::bigint AS successes
FROM routing_outcomes
WHERE merchant_id = $1 AND livemode = $2 AND account_id = ANY($3::text[]) AND currency = $4 AND card_brand = $5
  AND bucket_start >= $6
GROUP BY account_id
"""
# Across merchants: the worker's role alone may (its policy), and deletes nothing newer.
_PRUNE_OUTCOMES = """
WITH pruned AS (
    DELETE FROM routing_outcomes
    WHERE ctid = ANY(ARRAY(SELECT ctid FROM routing_outcomes WHERE bucket_start < $1 LIMIT $2))
    RETURNING 1
)
SELECT count(*) FROM pruned
"""


async def lock_rules(connection: Connection, tenant: Tenant) -> None:
    await connection.execute(_LOCK_RULES, tenant.merchant_id, tenant.livemode)


async def insert_rules(
    connection: Connection,
    tenant: Tenant,
    *,
    rules_id: str,
    description: str | None,
    rules: list[dict[str, Any]],
    default_accounts: list[str],
    max_attempts: int,
    metadata: dict[str, str],
    created_at: datetime,
) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _INSERT_RULES,
        tenant.merchant_id,
        tenant.livemode,
        rules_id,
        description,
        rules,
        default_accounts,
        max_attempts,
        metadata,
        created_at,
    )
    return row


async def get_rules(connection: Connection, tenant: Tenant, rules_id: str, *, for_update: bool = False) -> AnyRow | None:
    query = _RULES_FOR_UPDATE if for_update else _RULES
    row: AnyRow | None = await connection.fetchrow(query, tenant.merchant_id, tenant.livemode, rules_id)
    return row


async def rules_exist(connection: Connection, tenant: Tenant, rules_id: str) -> bool:
    return bool(await connection.fetchval(_RULES_EXIST, tenant.merchant_id, tenant.livemode, rules_id))


async def live_rules(connection: Connection, tenant: Tenant) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_LIVE_RULES, tenant.merchant_id, tenant.livemode)
    return row


async def page_rules(connection: Connection, tenant: Tenant, request: PageRequest) -> Page:
    return await fetch_page(connection, _ALL_RULES, (tenant.merchant_id, tenant.livemode), request)


async def set_status(connection: Connection, tenant: Tenant, rules_id: str, status: str, at: datetime) -> AnyRow:
    row: AnyRow = await connection.fetchrow(_SET_STATUS, tenant.merchant_id, tenant.livemode, rules_id, status, at)
    return row


async def record_outcome(
    connection: Connection,
    tenant: Tenant,
    *,
    account_id: str,
    currency: str,
    card_brand: str,
    bucket_start: datetime,
    stripe: int,
    succeeded: bool,
) -> None:
    await connection.execute(
        _RECORD_OUTCOME,
        tenant.merchant_id,
        tenant.livemode,
        account_id,
        currency,
        card_brand,
        bucket_start,
        stripe,
        int(succeeded),
    )


async def outcomes(
    connection: Connection, tenant: Tenant, account_ids: Sequence[str], *, currency: str, card_brand: str, since: datetime
) -> dict[str, tuple[int, int]]:
    """account id -> (successes, attempts) in the segment, in the buckets from `since` on."""
    rows = await connection.fetch(_OUTCOMES, tenant.merchant_id, tenant.livemode, list(account_ids), currency, card_brand, since)
    return {row["account_id"]: (row["successes"], row["attempts"]) for row in rows}


async def prune_outcomes(connection: Connection, before: datetime, limit: int) -> int:
    """Delete at most `limit` bucket rows, of any merchant, that start before `before`; how many went."""
    return int(await connection.fetchval(_PRUNE_OUTCOMES, before, limit))
