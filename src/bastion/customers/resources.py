"""The objects the customers API returns: one definition each, for the answers the service
builds, the event payloads and the OpenAPI document (ADR 11)."""

from typing import Literal

from typing_extensions import TypedDict


class Customer(TypedDict):
    id: str
    object: Literal["customer"]
    email: str | None
    name: str | None
    phone: str | None
    description: str | None
    metadata: dict[str, str]
    created: int
    livemode: bool


class DeletedCustomer(TypedDict):
    """What a deleted customer answers, with status 200 (Stripe's convention)."""

    id: str
    object: Literal["customer"]
    deleted: Literal[True]


class CustomerList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[Customer]
    has_more: bool
