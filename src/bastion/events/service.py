"""Emitting events into the outbox, and reading them back for GET /v1/events."""

import re
from collections.abc import Iterable, Sequence
from typing import Any

from bastion.events import repository
from bastion.events.resources import AnyResource, Event, EventData, EventList, EventRequest
from bastion.kernel.clock import unix_seconds
from bastion.kernel.errors import InvalidRequest, ResourceMissing, invariant
from bastion.kernel.ids import is_id, new_id
from bastion.platform.db import AnyRow, UnitOfWork
from bastion.platform.pagination import PageRequest, check_cursors

# Every event type a context declares in its events.py, registered by bootstrap: emit and
# GET /v1/events?type= accept only these.
_EVENT_TYPE = re.compile(r"[a-z_]+(?:\.[a-z_]+)+")
_registered: set[str] = set()


def event_types() -> frozenset[str]:
    """Every registered event type (what webhook endpoints may subscribe to)."""
    return frozenset(_registered)


def register_event_types(event_types: Iterable[str]) -> None:
    for event_type in event_types:
        invariant(_EVENT_TYPE.fullmatch(event_type) is not None, f"event type {event_type!r} is not noun.verb")
        _registered.add(event_type)


def document_event_types(schema: dict[str, Any]) -> None:
    """The event types registered at bootstrap, as an enum in the OpenAPI document (built on
    its first request, after bootstrap)."""
    schema["enum"] = sorted(_registered)


def event_data(resource: AnyResource, previous_attributes: AnyResource | None) -> EventData:
    data = EventData(object=resource)
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return data


def emit(uow: UnitOfWork, event_type: str, resource: AnyResource, previous_attributes: AnyResource | None = None) -> str:
    """Add an event to the outbox, in the caller's transaction (written with the unit of work's
    other events just before it commits): `resource` is the context's resource as the API
    answers it after the change."""
    if event_type not in _registered:
        raise ValueError(f"unregistered event type {event_type!r}")
    event_id = new_id("evt")
    uow.write_at_commit(
        repository.insert_events,
        {
            "id": event_id,
            "merchant_id": uow.tenant.merchant_id,
            "livemode": uow.tenant.livemode,
            "type": event_type,
            "data": event_data(resource, previous_attributes),
            "request_id": uow.actor.request_id,
            "created_at": uow.now(),
        },
    )
    return event_id


def to_resource(row: AnyRow) -> Event:
    return Event(
        id=row["id"],
        object="event",
        type=row["type"],
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
        data=row["data"],
        request=EventRequest(id=row["request_id"]),
    )


def event_list(rows: Sequence[AnyRow], has_more: bool) -> EventList:
    return EventList(object="list", url="/v1/events", data=[to_resource(row) for row in rows], has_more=has_more)


async def retrieve_event(uow: UnitOfWork, event_id: str) -> Event:
    row = await repository.get(uow.connection, uow.tenant, event_id) if is_id(event_id, "evt") else None
    if row is None:
        raise ResourceMissing(f"No such event: '{event_id}'", param="id")
    return to_resource(row)


async def list_events(uow: UnitOfWork, request: PageRequest, event_type: str | None) -> EventList:
    if event_type is not None and event_type not in _registered:
        raise InvalidRequest(f"Unknown event type {event_type!r}", param="type")
    await check_cursors(
        request, prefix="evt", noun="event", exists=lambda cursor: repository.exists(uow.connection, uow.tenant, cursor)
    )
    page = await repository.page(uow.connection, uow.tenant, request, event_type)
    return event_list(page.rows, page.has_more)
