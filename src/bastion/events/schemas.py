from typing import Any

from pydantic import BaseModel


class EventRequest(BaseModel):
    id: str | None


class Event(BaseModel):
    id: str
    object: str = "event"
    type: str
    created: int
    livemode: bool
    data: dict[str, Any]
    request: EventRequest


class EventList(BaseModel):
    object: str = "list"
    url: str
    data: list[Event]
    has_more: bool
