"""All SQL of the events context."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.events.tables import event_inbox, events
from bastion.kernel.clock import now
from bastion.platform.db import AnyRow
from bastion.platform.pagination import Page, PageRequest, fetch_page

_INSERT_EVENT = insert(events)


async def insert_event(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(_INSERT_EVENT, values)


async def get(connection: AsyncConnection, event_id: str) -> AnyRow | None:
    return (await connection.execute(select(events).where(events.c.id == event_id))).first()


async def exists(connection: AsyncConnection, event_id: str) -> bool:
    return (await connection.execute(select(events.c.id).where(events.c.id == event_id))).first() is not None


async def page(connection: AsyncConnection, request: PageRequest, event_type: str | None) -> Page:
    query = select(events)
    if event_type is not None:
        query = query.where(events.c.type == event_type)
    return await fetch_page(connection, query, events.c.id, request)


async def claim_unpublished(connection: AsyncConnection, limit: int, skip_event_ids: Sequence[str] = ()) -> Sequence[AnyRow]:
    query = select(events).where(events.c.published_at.is_(None))
    if skip_event_ids:
        query = query.where(events.c.id.not_in(skip_event_ids))
    query = query.order_by(events.c.id).limit(limit).with_for_update(skip_locked=True)
    return (await connection.execute(query)).all()


async def mark_published(connection: AsyncConnection, event_ids: list[str]) -> None:
    await connection.execute(update(events).where(events.c.id.in_(event_ids)).values(published_at=now()))


async def claim_inbox(connection: AsyncConnection, subscriber: str, event_id: str) -> bool:
    """True the first time `subscriber` sees `event_id`; False on a redelivery."""
    statement = (
        pg_insert(event_inbox)
        .values(subscriber=subscriber, event_id=event_id)
        .on_conflict_do_nothing()
        .returning(event_inbox.c.event_id)
    )
    return (await connection.execute(statement)).first() is not None
