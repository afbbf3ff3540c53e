"""The objects the webhooks API returns: one definition each, for the answers the service
builds and the OpenAPI document (ADR 11)."""

from typing import Literal

from typing_extensions import TypedDict

from bastion.webhooks.domain import SignatureScheme


class WebhookEndpoint(TypedDict):
    id: str
    object: Literal["webhook_endpoint"]
    url: str
    enabled_events: list[str]
    description: str | None
    metadata: dict[str, str]
    # Whether deliveries to it are made one at a time per object, each waiting for the one before.
    ordered: bool
    # How its deliveries are signed: Standard Webhooks' `webhook-*` headers, or `Stripe-Signature`.
    signature_scheme: SignatureScheme
    status: Literal["enabled", "disabled"]
    # Why Bastion disabled it (an answer of 410 Gone, or five days of failures); null otherwise.
    disabled_reason: str | None
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


class WebhookDelivery(TypedDict):
    """One event to one endpoint: `pending` while attempts remain, then `succeeded`, or `failed`
    (dead-lettered, its last answer kept)."""

    id: str
    object: Literal["webhook_delivery"]
    endpoint: str
    event: str
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    # Unix seconds of the next attempt while pending, else null.
    next_attempt: int | None
    last_attempt: int | None
    last_status_code: int | None
    last_error: str | None
    # The first 1 KiB of the endpoint's last answer.
    last_response_body: str | None
    created: int
    livemode: bool


class WebhookDeliveryList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[WebhookDelivery]
    has_more: bool


class WebhookDeliveryAttempt(TypedDict):
    id: str
    object: Literal["webhook_delivery_attempt"]
    delivery: str
    created: int
    duration_ms: int
    # Null when nothing answered (timeout, refused connection): `error` says what happened.
    status_code: int | None
    error: str | None
    response_body: str | None
    succeeded: bool
    livemode: bool


class WebhookDeliveryAttemptList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[WebhookDeliveryAttempt]
    has_more: bool


class WebhookEndpointRecovery(TypedDict):
    object: Literal["webhook_endpoint_recovery"]
    endpoint: str
    since: int
    # How many dead-lettered deliveries were queued again.
    requeued: int
