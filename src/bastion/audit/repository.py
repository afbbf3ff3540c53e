"""All SQL of the audit context."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.audit.tables import audit_checkpoints, audit_events, audit_seal_queue, audit_seals
from bastion.platform.db import AnyRow


async def insert_event(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(insert(audit_events), values)


async def queued_events(connection: AsyncConnection, limit: int) -> Sequence[AnyRow]:
    query = (
        select(audit_events)
        .join(audit_seal_queue, audit_seal_queue.c.event_id == audit_events.c.id)
        .order_by(audit_seal_queue.c.insert_order)
        .limit(limit)
    )
    return (await connection.execute(query)).all()


async def last_seal(connection: AsyncConnection) -> AnyRow | None:
    query = select(audit_seals.c.seq, audit_seals.c.row_hash).order_by(audit_seals.c.seq.desc()).limit(1)
    return (await connection.execute(query)).first()


async def insert_seals(connection: AsyncConnection, seals: list[dict[str, Any]]) -> None:
    await connection.execute(insert(audit_seals), seals)


async def dequeue(connection: AsyncConnection, event_ids: list[UUID]) -> None:
    await connection.execute(delete(audit_seal_queue).where(audit_seal_queue.c.event_id.in_(event_ids)))


async def insert_checkpoint(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(insert(audit_checkpoints), values)


async def sealed_page(connection: AsyncConnection, after_seq: int, limit: int) -> Sequence[AnyRow]:
    """Seals in chain order with their event (outer join: a deleted event shows as NULLs)."""
    query = (
        select(
            audit_seals.c.seq,
            audit_seals.c.event_id.label("sealed_event_id"),
            audit_seals.c.prev_hash,
            audit_seals.c.row_hash,
            audit_events,
        )
        .select_from(audit_seals.outerjoin(audit_events, audit_events.c.id == audit_seals.c.event_id))
        .where(audit_seals.c.seq > after_seq)
        .order_by(audit_seals.c.seq)
        .limit(limit)
    )
    return (await connection.execute(query)).all()


async def checkpoints(connection: AsyncConnection) -> Sequence[AnyRow]:
    return (await connection.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq))).all()


async def unsealed_count(connection: AsyncConnection) -> int:
    sealed = select(audit_seals.c.event_id)
    queued = select(audit_seal_queue.c.event_id)
    query = (
        select(func.count()).select_from(audit_events).where(audit_events.c.id.not_in(sealed), audit_events.c.id.not_in(queued))
    )
    return int((await connection.execute(query)).scalar_one())


async def events_for_resource(connection: AsyncConnection, resource_id: str) -> Sequence[AnyRow]:
    query = select(audit_events).where(audit_events.c.resource_id == resource_id).order_by(audit_events.c.insert_order)
    return (await connection.execute(query)).all()
