"""The objects the webhooks API returns: one definition each, for the answers the service
builds and the OpenAPI document (ADR 11)."""

from typing import Literal

from typing_extensions import TypedDict


class WebhookEndpoint(TypedDict):
    id: str
    object: Literal["webhook_endpoint"]
    url: str
    enabled_events: list[str]
    description: str | None
    metadata: dict[str, str]
    # Whether deliveries to it are made one at a time per object, each waiting for the one before.
    ordered: bool
    status: Literal["enabled", "disabled"]
    created: int
    livemode: bool


class WebhookEndpointWithSecret(WebhookEndpoint):
    """An endpoint as its creation and a rotation answer it: with its signing secret, shown
    there only (a replay of the request answers without it, as `null`)."""

    secret: str | None


class DeletedWebhookEndpoint(TypedDict):
    id: str
    object: Literal["webhook_endpoint"]
    deleted: Literal[True]


class WebhookEndpointList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[WebhookEndpoint]
    has_more: bool
