"""All SQL of the audit context."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import delete, exists, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.audit.tables import audit_checkpoints, audit_events, audit_seal_queue, audit_seals
from bastion.platform.db import AnyRow

_SEALER_LOCK_KEY = 0x0BA5_A0D1  # arbitrary, constant: "bastion audit sealer"


_INSERT_EVENT = insert(audit_events)


async def insert_event(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(_INSERT_EVENT, values)


async def lock_sealer(connection: AsyncConnection) -> bool:
    """Transaction-scoped, non-blocking: a second sealer returns at once instead of queueing up."""
    result = await connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _SEALER_LOCK_KEY})
    return bool(result.scalar_one())


async def use_snapshot(connection: AsyncConnection) -> None:
    """Make the open transaction read one snapshot, so that a sealer committing meanwhile
    cannot make the chain look inconsistent. Must be the transaction's first statement."""
    await connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))


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
    """One multi-row INSERT (4 bind parameters a row, so a batch must stay under 8,000 rows)."""
    await connection.execute(insert(audit_seals).values(seals))


async def dequeue(connection: AsyncConnection, event_ids: list[UUID]) -> None:
    await connection.execute(delete(audit_seal_queue).where(audit_seal_queue.c.event_id.in_(event_ids)))


async def insert_checkpoint(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(insert(audit_checkpoints), values)


async def sealed_page(connection: AsyncConnection, after_seq: int | None, limit: int) -> Sequence[AnyRow]:
    """Seals in chain order with their event (outer join: a deleted event shows as NULLs).
    `after_seq` None starts at the lowest seq there is, whatever it is."""
    query = (
        select(
            audit_seals.c.seq,
            audit_seals.c.event_id.label("sealed_event_id"),
            audit_seals.c.prev_hash,
            audit_seals.c.row_hash,
            audit_events,
        )
        .select_from(audit_seals.outerjoin(audit_events, audit_events.c.id == audit_seals.c.event_id))
        .order_by(audit_seals.c.seq)
        .limit(limit)
    )
    if after_seq is not None:
        query = query.where(audit_seals.c.seq > after_seq)
    return (await connection.execute(query)).all()


async def checkpoints_through(connection: AsyncConnection, after_seq: int | None, last_seq: int) -> Sequence[AnyRow]:
    """Checkpoints in (after_seq, last_seq]: at most one per seq, so bounded by that range."""
    query = select(audit_checkpoints).where(audit_checkpoints.c.seq <= last_seq).order_by(audit_checkpoints.c.seq)
    if after_seq is not None:
        query = query.where(audit_checkpoints.c.seq > after_seq)
    return (await connection.execute(query)).all()


async def last_checkpoint_seq(connection: AsyncConnection) -> int | None:
    seq: int | None = (await connection.execute(select(func.max(audit_checkpoints.c.seq)))).scalar_one()
    return seq


async def unsealed_event_ids(connection: AsyncConnection, limit: int) -> list[UUID]:
    """Rows that are neither sealed nor waiting in the queue: written behind the trigger's back."""
    sealed = exists().where(audit_seals.c.event_id == audit_events.c.id)
    queued = exists().where(audit_seal_queue.c.event_id == audit_events.c.id)
    query = select(audit_events.c.id).where(~sealed, ~queued).order_by(audit_events.c.insert_order).limit(limit)
    return list((await connection.execute(query)).scalars())


async def events_for_resource(connection: AsyncConnection, resource_id: str) -> Sequence[AnyRow]:
    query = select(audit_events).where(audit_events.c.resource_id == resource_id).order_by(audit_events.c.insert_order)
    return (await connection.execute(query)).all()
