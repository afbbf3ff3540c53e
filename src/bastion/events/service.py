"""Emitting events into the outbox, and reading them back for GET /v1/events."""

from typing import Any

from bastion.events import repository
from bastion.kernel.clock import now, unix_seconds
from bastion.kernel.errors import InvalidRequest, ResourceMissing
from bastion.kernel.ids import is_id, new_id
from bastion.platform.db import AnyRow, UnitOfWork
from bastion.platform.pagination import PageRequest, check_cursors

# Every event type Bastion emits; GET /v1/events?type= accepts only these.
EVENT_TYPES = frozenset(
    {
        "customer.created",
        "customer.updated",
        "customer.deleted",
        "ledger.account.created",
        "ledger.account.closed",
        "payment_method.created",
    }
)


async def emit(
    uow: UnitOfWork, event_type: str, resource: dict[str, Any], previous_attributes: dict[str, Any] | None = None
) -> str:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unregistered event type {event_type!r}")
    data: dict[str, Any] = {"object": resource}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    event_id = new_id("evt")
    await repository.insert_event(
        uow.connection,
        event_id=event_id,
        merchant_id=uow.tenant.merchant_id,
        livemode=uow.tenant.livemode,
        event_type=event_type,
        data=data,
        request_id=uow.actor.request_id,
        created_at=now(),
    )
    return event_id


def to_resource(row: AnyRow) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "event",
        "type": row["type"],
        "created": unix_seconds(row["created_at"]),
        "livemode": row["livemode"],
        "data": row["data"],
        "request": {"id": row["request_id"]},
    }


async def retrieve_event(uow: UnitOfWork, event_id: str) -> dict[str, Any]:
    row = await repository.get(uow.connection, uow.tenant, event_id) if is_id(event_id, "evt") else None
    if row is None:
        raise ResourceMissing(f"No such event: '{event_id}'", param="id")
    return to_resource(row)


async def list_events(uow: UnitOfWork, request: PageRequest, event_type: str | None) -> tuple[list[dict[str, Any]], bool]:
    if event_type is not None and event_type not in EVENT_TYPES:
        raise InvalidRequest(f"Unknown event type {event_type!r}", param="type")
    await check_cursors(
        request, prefix="evt", noun="event", exists=lambda cursor: repository.exists(uow.connection, uow.tenant, cursor)
    )
    page = await repository.page(uow.connection, uow.tenant, request, event_type)
    return [to_resource(row) for row in page.rows], page.has_more
