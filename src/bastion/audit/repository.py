"""All SQL of the audit context."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from bastion.audit.chain import CHAINED_FIELDS
from bastion.platform.db import AnyRow, Connection

_SEALER_LOCK_KEY = 0x0BA5_A0D1  # arbitrary, constant: "bastion audit sealer"

# Every column of audit_events, as the chain reads them (insert_order included, like `SELECT *`).
_EVENT_COLUMNS = (
    "e.id, e.insert_order, e.merchant_id, e.livemode, e.actor, e.action_type, e.resource_type, e.resource_id, "
    "e.before_state, e.after_state, e.ip_address, e.device_id, e.request_id, e.created_at"
)

# One statement for a unit of work's rows, in the order they were recorded (insert_order
# follows it), with every chained column; a missing state (a create's before, a delete's
# after) is SQL NULL.
_INSERT_EVENTS = """
INSERT INTO audit_events (
    id, merchant_id, livemode, actor, action_type, resource_type, resource_id,
    before_state, after_state, ip_address, device_id, request_id, created_at
)
SELECT id, merchant_id, livemode, actor, action_type, resource_type, resource_id,
       before_state, after_state, ip_address, device_id, request_id, created_at
FROM unnest(
    $1::uuid[], $2::text[], $3::boolean[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::jsonb[], $9::jsonb[], $10::inet[], $11::text[], $12::text[], $13::timestamptz[]
) WITH ORDINALITY AS r (
    id, merchant_id, livemode, actor, action_type, resource_type, resource_id,
    before_state, after_state, ip_address, device_id, request_id, created_at, position
)
ORDER BY position
"""


async def insert_events(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    await connection.execute(_INSERT_EVENTS, *([row[name] for row in rows] for name in CHAINED_FIELDS))


_LOCK_SEALER = "SELECT pg_try_advisory_xact_lock($1)"


async def lock_sealer(connection: Connection) -> bool:
    """Transaction-scoped, non-blocking: a second sealer returns at once instead of queueing up."""
    return bool(await connection.fetchval(_LOCK_SEALER, _SEALER_LOCK_KEY))


_QUEUED_EVENTS = f"""
SELECT {_EVENT_COLUMNS}
FROM audit_events e JOIN audit_seal_queue q ON q.event_id = e.id
ORDER BY q.insert_order
LIMIT $1
"""


async def queued_events(connection: Connection, limit: int) -> Sequence[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_QUEUED_EVENTS, limit)
    return rows


_LAST_SEAL = "SELECT seq, row_hash FROM audit_seals ORDER BY seq DESC LIMIT 1"


async def last_seal(connection: Connection) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_LAST_SEAL)
    return row


_INSERT_SEALS = """
INSERT INTO audit_seals (seq, event_id, prev_hash, row_hash)
SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[])
"""


async def insert_seals(connection: Connection, seals: list[dict[str, Any]]) -> None:
    """One INSERT of the whole batch: four array parameters, whatever the batch size."""
    await connection.execute(
        _INSERT_SEALS,
        [seal["seq"] for seal in seals],
        [seal["event_id"] for seal in seals],
        [seal["prev_hash"] for seal in seals],
        [seal["row_hash"] for seal in seals],
    )


_DEQUEUE = "DELETE FROM audit_seal_queue WHERE event_id = ANY($1::uuid[])"


async def dequeue(connection: Connection, event_ids: list[UUID]) -> None:
    await connection.execute(_DEQUEUE, event_ids)


_INSERT_CHECKPOINT = "INSERT INTO audit_checkpoints (seq, chain_hash, key_id, signature) VALUES ($1, $2, $3, $4)"


async def insert_checkpoint(connection: Connection, values: dict[str, Any]) -> None:
    await connection.execute(_INSERT_CHECKPOINT, values["seq"], values["chain_hash"], values["key_id"], values["signature"])


_SEALED_PAGE_FROM = f"""
SELECT s.seq, s.event_id AS sealed_event_id, s.prev_hash, s.row_hash, {_EVENT_COLUMNS}
FROM audit_seals s LEFT OUTER JOIN audit_events e ON e.id = s.event_id
"""
# Two statements rather than `$1 IS NULL OR ...`, so that a generic plan keeps the index range on seq.
_SEALED_PAGE_FIRST = f"{_SEALED_PAGE_FROM} ORDER BY s.seq LIMIT $1"
_SEALED_PAGE_AFTER = f"{_SEALED_PAGE_FROM} WHERE s.seq > $1 ORDER BY s.seq LIMIT $2"


async def sealed_page(connection: Connection, after_seq: int | None, limit: int) -> Sequence[AnyRow]:
    """Seals in chain order with their event (outer join: a deleted event shows as NULLs).
    `after_seq` None starts at the lowest seq there is, whatever it is."""
    if after_seq is None:
        rows: list[AnyRow] = await connection.fetch(_SEALED_PAGE_FIRST, limit)
    else:
        rows = await connection.fetch(_SEALED_PAGE_AFTER, after_seq, limit)
    return rows


_CHECKPOINTS_SELECT = "SELECT seq, chain_hash, key_id, signature, created_at FROM audit_checkpoints"
_CHECKPOINTS_THROUGH = f"{_CHECKPOINTS_SELECT} WHERE seq <= $1 ORDER BY seq"
_CHECKPOINTS_BETWEEN = f"{_CHECKPOINTS_SELECT} WHERE seq > $1 AND seq <= $2 ORDER BY seq"


async def checkpoints_through(connection: Connection, after_seq: int | None, last_seq: int) -> Sequence[AnyRow]:
    """Checkpoints in (after_seq, last_seq]: at most one per seq, so bounded by that range."""
    if after_seq is None:
        rows: list[AnyRow] = await connection.fetch(_CHECKPOINTS_THROUGH, last_seq)
    else:
        rows = await connection.fetch(_CHECKPOINTS_BETWEEN, after_seq, last_seq)
    return rows


_LAST_CHECKPOINT_SEQ = "SELECT max(seq) FROM audit_checkpoints"
_LATEST_CHECKPOINT = f"{_CHECKPOINTS_SELECT} ORDER BY seq DESC LIMIT 1"


async def latest_checkpoint(connection: Connection) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_LATEST_CHECKPOINT)
    return row


async def last_checkpoint_seq(connection: Connection) -> int | None:
    seq: int | None = await connection.fetchval(_LAST_CHECKPOINT_SEQ)
    return seq


_UNSEALED_EVENT_IDS = """
SELECT e.id
FROM audit_events e
WHERE NOT EXISTS (SELECT FROM audit_seals s WHERE s.event_id = e.id)
  AND NOT EXISTS (SELECT FROM audit_seal_queue q WHERE q.event_id = e.id)
ORDER BY e.insert_order
LIMIT $1
"""


async def unsealed_event_ids(connection: Connection, limit: int) -> list[UUID]:
    """Rows that are neither sealed nor waiting in the queue: written behind the trigger's back."""
    return [row["id"] for row in await connection.fetch(_UNSEALED_EVENT_IDS, limit)]


_EVENTS_FOR_RESOURCE = f"SELECT {_EVENT_COLUMNS} FROM audit_events e WHERE e.resource_id = $1 ORDER BY e.insert_order"


async def events_for_resource(connection: Connection, resource_id: str) -> Sequence[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_EVENTS_FOR_RESOURCE, resource_id)
    return rows
