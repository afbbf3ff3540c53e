"""All SQL of the events context."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bastion.platform.db import AnyRow, Connection, Tenant
from bastion.platform.pagination import Page, PageRequest, fetch_page

_COLUMNS = "id, merchant_id, livemode, type, data, request_id, created_at, published_at"

# One statement for a unit of work's events.
_INSERT_EVENTS = """
INSERT INTO events (id, merchant_id, livemode, type, data, request_id, created_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::jsonb[], $6::text[], $7::timestamptz[])
"""
_EVENT_VALUES = ("id", "merchant_id", "livemode", "type", "data", "request_id", "created_at")
# API reads name their tenant ($1, $2) on top of row-level security: isolation holds twice.
_GET = f"SELECT {_COLUMNS} FROM events WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_EXISTS = "SELECT EXISTS (SELECT 1 FROM events WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
# For fetch_page: $3 is the event type, or NULL for every type.
_PAGE = f"SELECT {_COLUMNS} FROM events WHERE merchant_id = $1 AND livemode = $2 AND ($3::text IS NULL OR type = $3)"
# SKIP LOCKED: relays running side by side each claim a different batch. NO KEY: a subscriber's
# row that references the event (a webhook delivery) takes its key share while the batch is held.
_CLAIM_UNPUBLISHED = (
    f"SELECT {_COLUMNS} FROM events WHERE published_at IS NULL AND id <> ALL($1::text[])"
    " ORDER BY id LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED"
)
_MARK_PUBLISHED = "UPDATE events SET published_at = $2 WHERE id = ANY($1::text[])"
_CLAIM_INBOX = (
    "INSERT INTO event_inbox (subscriber, event_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING RETURNING event_id"
)
_INBOX_HOLDS = "SELECT EXISTS (SELECT 1 FROM event_inbox WHERE subscriber = $1 AND event_id = $2)"


async def insert_events(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    await connection.execute(_INSERT_EVENTS, *([row[name] for row in rows] for name in _EVENT_VALUES))


async def get(connection: Connection, tenant: Tenant, event_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_GET, tenant.merchant_id, tenant.livemode, event_id)
    return row


async def exists(connection: Connection, tenant: Tenant, event_id: str) -> bool:
    return bool(await connection.fetchval(_EXISTS, tenant.merchant_id, tenant.livemode, event_id))


async def page(connection: Connection, tenant: Tenant, request: PageRequest, event_type: str | None) -> Page:
    return await fetch_page(connection, _PAGE, (tenant.merchant_id, tenant.livemode, event_type), request)


async def claim_unpublished(connection: Connection, limit: int, skip_event_ids: Sequence[str] = ()) -> Sequence[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_CLAIM_UNPUBLISHED, list(skip_event_ids), limit)
    return rows


async def mark_published(connection: Connection, event_ids: list[str], moment: datetime) -> None:
    await connection.execute(_MARK_PUBLISHED, event_ids, moment)


async def claim_inbox(connection: Connection, subscriber: str, event_ids: list[str]) -> list[str]:
    """Those of `event_ids` that `subscriber` sees for the first time (the others are redeliveries)."""
    return [row["event_id"] for row in await connection.fetch(_CLAIM_INBOX, subscriber, event_ids)]


async def inbox_holds(connection: Connection, subscriber: str, event_id: str) -> bool:
    """Whether `subscriber` has handled `event_id` already."""
    return bool(await connection.fetchval(_INBOX_HOLDS, subscriber, event_id))
