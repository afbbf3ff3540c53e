"""The objects the events API returns: one definition each, for the answers the service
builds, the payloads it stores and the OpenAPI document (ADR 11)."""

from collections.abc import Mapping
from typing import Literal, NotRequired

from typing_extensions import TypedDict

# Any context's resource (or some of its fields): type checkers accept every TypedDict as this mapping.
AnyResource = Mapping[str, object]


class EventData(TypedDict):
    """`object` is the resource the event is about, as the API answers it after the change;
    `previous_attributes`, on updates only, holds the earlier values of the fields that changed."""

    object: AnyResource
    previous_attributes: NotRequired[AnyResource]


class EventRequest(TypedDict):
    id: str | None


class Event(TypedDict):
    id: str
    object: Literal["event"]
    type: str
    created: int
    livemode: bool
    data: EventData
    request: EventRequest


class EventList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[Event]
    has_more: bool
