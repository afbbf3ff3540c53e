"""HTTP routes of the events context."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from bastion.api.context import Authorized, RequestContext
from bastion.events import service
from bastion.events.resources import Event, EventList
from bastion.platform.http.pagination import page_request
from bastion.platform.http.responses import JsonResponse
from bastion.platform.http.schemas import documented, id_schema
from bastion.platform.pagination import PageRequest

router = APIRouter(prefix="/v1/events", tags=["events"])

Reader = Annotated[RequestContext, Depends(Authorized("events:read"))]


@router.get("/{event_id}", summary="Retrieve an event", responses=documented(Event))
async def retrieve_event(
    event_id: Annotated[str, Path(max_length=64, json_schema_extra=id_schema("evt"), description="An event id, evt_...")],
    context: Reader,
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.retrieve_event(uow, event_id))


@router.get("", summary="List events, newest first", responses=documented(EventList))
async def list_events(
    context: Reader,
    page: Annotated[PageRequest, Depends(page_request("evt"))],
    type: Annotated[  # noqa: A002  (Stripe's name for the filter)
        str | None,
        Query(max_length=64, json_schema_extra=service.document_event_types, description="Only events of this type"),
    ] = None,
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.list_events(uow, page, type))
