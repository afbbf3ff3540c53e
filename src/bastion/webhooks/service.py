"""Use cases of the webhooks context. Each takes the caller's unit of work and never commits."""

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bastion import audit, events
from bastion.kernel.clock import unix_seconds, unix_seconds_or_none
from bastion.kernel.errors import InvalidRequest, ResourceMissing
from bastion.kernel.ids import is_id, new_id
from bastion.kernel.metadata import merge_metadata
from bastion.platform.db import AnyRow, UnitOfWork
from bastion.platform.http.outbound import DestinationPolicy, check_url
from bastion.platform.pagination import PageRequest, check_cursors
from bastion.webhooks import repository
from bastion.webhooks.domain import ENDPOINTS_PER_MODE_MAX, ROTATION_OVERLAP, event_pattern_problem, new_secret
from bastion.webhooks.errors import WebhookEndpointsFull, WebhookRecoverRateLimited, WebhookRecoverWindow
from bastion.webhooks.events import WEBHOOK_ENDPOINT_DELIVERY_EXHAUSTED, WEBHOOK_ENDPOINT_DISABLED
from bastion.webhooks.resources import (
    DeletedWebhookEndpoint,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookDeliveryAttemptList,
    WebhookDeliveryList,
    WebhookEndpoint,
    WebhookEndpointList,
    WebhookEndpointRecovery,
    WebhookEndpointWithSecret,
)
from bastion.webhooks.schemas import WebhookEndpointCreate, WebhookEndpointRecover, WebhookEndpointUpdate
from bastion.webhooks.secrets import EndpointSecrets

PREFIX = "we"
_EDITABLE = ("url", "enabled_events", "description", "metadata", "ordered", "signature_scheme", "disabled")


def endpoint_resource(row: AnyRow) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"],
        object="webhook_endpoint",
        url=row["url"],
        enabled_events=list(row["enabled_events"]),
        description=row["description"],
        metadata=row["metadata"],
        ordered=row["ordered"],
        signature_scheme=row["signature_scheme"],
        status="disabled" if row["disabled"] else "enabled",
        disabled_reason=row["disabled_reason"],
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )


def _with_secret(row: AnyRow, secret: str) -> WebhookEndpointWithSecret:
    return WebhookEndpointWithSecret(**endpoint_resource(row), secret=secret)


def without_secret(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    """What an idempotent replay of a creation or a rotation answers: the secret is shown once,
    and is not kept in clear with the stored answer."""
    return {**answer, "secret": None}


def _url(url: str, uow: UnitOfWork) -> str:
    # Test mode also takes loopback over http, for a developer's own machine (docs/webhooks.md).
    return check_url(url, DestinationPolicy(allow_loopback_http=not uow.tenant.livemode), param="url")


def _enabled_events(patterns: list[str]) -> list[str]:
    known = events.event_types()
    for index, pattern in enumerate(patterns):
        problem = event_pattern_problem(pattern, known)
        if problem is not None:
            raise InvalidRequest(f"enabled_events: {problem}.", param=f"enabled_events[{index}]")
    # In the order given, each once.
    return list(dict.fromkeys(patterns))


def _audit(
    uow: UnitOfWork, action: str, endpoint_id: str, *, before: WebhookEndpoint | None, after: WebhookEndpoint | None
) -> None:
    audit.record(
        uow,
        action_type=f"webhook_endpoint.{action}",
        resource_type="webhook_endpoint",
        resource_id=endpoint_id,
        before=before,
        after=after,
    )


async def _endpoint(uow: UnitOfWork, endpoint_id: str, *, for_update: bool = False) -> AnyRow:
    row = (
        await repository.get_endpoint(uow.connection, uow.tenant, endpoint_id, for_update=for_update)
        if is_id(endpoint_id, PREFIX)
        else None
    )
    if row is None:
        raise ResourceMissing(f"No such webhook endpoint: '{endpoint_id}'", param="id")
    return row


async def create_endpoint(uow: UnitOfWork, request: WebhookEndpointCreate, secrets: EndpointSecrets) -> WebhookEndpointWithSecret:
    url = _url(request.url, uow)
    enabled_events = _enabled_events(request.enabled_events)
    if await repository.count_endpoints(uow.connection, uow.tenant) >= ENDPOINTS_PER_MODE_MAX:
        raise WebhookEndpointsFull(
            f"A merchant has at most {ENDPOINTS_PER_MODE_MAX} webhook endpoints in each mode.", param="url"
        )
    endpoint_id, secret = new_id(PREFIX), new_secret()
    row = await repository.insert_endpoint(
        uow.connection,
        uow.tenant,
        endpoint_id=endpoint_id,
        url=url,
        enabled_events=enabled_events,
        description=request.description,
        metadata=merge_metadata({}, request.metadata),
        ordered=request.ordered,
        signature_scheme=request.signature_scheme,
        secret_sealed=secrets.seal(endpoint_id, secret),
        created_at=uow.now(),
    )
    resource = endpoint_resource(row)
    _audit(uow, "create", endpoint_id, before=None, after=resource)
    return _with_secret(row, secret)


async def retrieve_endpoint(uow: UnitOfWork, endpoint_id: str) -> WebhookEndpoint:
    return endpoint_resource(await _endpoint(uow, endpoint_id))


async def update_endpoint(uow: UnitOfWork, endpoint_id: str, request: WebhookEndpointUpdate) -> WebhookEndpoint:
    current = await _endpoint(uow, endpoint_id, for_update=True)
    sent = request.model_fields_set
    for name in ("url", "enabled_events", "ordered", "signature_scheme", "disabled"):
        if name in sent and getattr(request, name) is None:
            raise InvalidRequest(f"{name} cannot be null: leave it out to keep it.", param=name)
    fields: dict[str, Any] = {name: current[name] for name in _EDITABLE}
    if request.url is not None:
        fields["url"] = _url(request.url, uow)
    if request.enabled_events is not None:
        fields["enabled_events"] = _enabled_events(request.enabled_events)
    if "description" in sent:
        fields["description"] = request.description
    if request.metadata is not None:
        fields["metadata"] = merge_metadata(current["metadata"], request.metadata)
    for name in ("ordered", "signature_scheme", "disabled"):
        if getattr(request, name) is not None:
            fields[name] = getattr(request, name)
    row = await repository.update_endpoint(uow.connection, uow.tenant, endpoint_id, fields | {"updated_at": uow.now()})
    before, after = endpoint_resource(current), endpoint_resource(row)
    _audit(uow, "update", endpoint_id, before=before, after=after)
    return after


async def rotate_secret(uow: UnitOfWork, endpoint_id: str, secrets: EndpointSecrets) -> WebhookEndpointWithSecret:
    """A new secret; the one it replaces keeps signing beside it for ROTATION_OVERLAP, so that the
    receiver can switch without missing a delivery. A second rotation within that time drops the
    oldest at once."""
    current = await _endpoint(uow, endpoint_id, for_update=True)
    secret, now = new_secret(), uow.now()
    row = await repository.rotate_secret(
        uow.connection,
        uow.tenant,
        endpoint_id,
        secret_sealed=secrets.seal(endpoint_id, secret),
        previous_secret_sealed=current["secret_sealed"],
        previous_secret_expires_at=now + ROTATION_OVERLAP,
        updated_at=now,
    )
    resource = endpoint_resource(row)
    _audit(uow, "rotate_secret", endpoint_id, before=resource, after=resource)
    return _with_secret(row, secret)


async def delete_endpoint(uow: UnitOfWork, endpoint_id: str) -> DeletedWebhookEndpoint:
    current = await _endpoint(uow, endpoint_id, for_update=True)
    await repository.delete_endpoint(uow.connection, uow.tenant, endpoint_id, uow.now())
    _audit(uow, "delete", endpoint_id, before=endpoint_resource(current), after=None)
    return DeletedWebhookEndpoint(id=endpoint_id, object="webhook_endpoint", deleted=True)


async def list_endpoints(uow: UnitOfWork, request: PageRequest) -> WebhookEndpointList:
    await check_cursors(
        request,
        prefix=PREFIX,
        noun="webhook endpoint",
        exists=lambda cursor: repository.endpoint_exists(uow.connection, uow.tenant, cursor),
    )
    page = await repository.page_endpoints(uow.connection, uow.tenant, request)
    return WebhookEndpointList(
        object="list", url="/v1/webhook_endpoints", data=[endpoint_resource(row) for row in page.rows], has_more=page.has_more
    )


# --- Deliveries ---

DELIVERY_PREFIX = "whd"
ATTEMPT_PREFIX = "wha"
# POST /recover: once a minute per endpoint, over at most the last 14 days of dead letters.
RECOVER_INTERVAL = timedelta(minutes=1)
RECOVER_WINDOW_MAX = timedelta(days=14)


def delivery_resource(row: AnyRow) -> WebhookDelivery:
    return WebhookDelivery(
        id=row["id"],
        object="webhook_delivery",
        endpoint=row["endpoint_id"],
        event=row["event_id"],
        event_type=row["event_type"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt=unix_seconds_or_none(row["next_attempt_at"]),
        last_attempt=unix_seconds_or_none(row["last_attempt_at"]),
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        last_response_body=row["last_response_body"],
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )


def attempt_resource(row: AnyRow) -> WebhookDeliveryAttempt:
    return WebhookDeliveryAttempt(
        id=row["id"],
        object="webhook_delivery_attempt",
        delivery=row["delivery_id"],
        created=unix_seconds(row["attempted_at"]),
        duration_ms=row["duration_ms"],
        status_code=row["status_code"],
        error=row["error"],
        response_body=row["response_body"],
        succeeded=row["succeeded"],
        livemode=row["livemode"],
    )


def _deliveries_url(endpoint_id: str) -> str:
    return f"/v1/webhook_endpoints/{endpoint_id}/deliveries"


async def _delivery(uow: UnitOfWork, endpoint_id: str, delivery_id: str) -> AnyRow:
    await _endpoint(uow, endpoint_id)
    row = (
        await repository.get_delivery(uow.connection, uow.tenant, endpoint_id, delivery_id)
        if is_id(delivery_id, DELIVERY_PREFIX)
        else None
    )
    if row is None:
        raise ResourceMissing(f"No such webhook delivery: '{delivery_id}'", param="delivery")
    return row


async def list_deliveries(uow: UnitOfWork, endpoint_id: str, status: str | None, request: PageRequest) -> WebhookDeliveryList:
    await _endpoint(uow, endpoint_id)
    await check_cursors(
        request,
        prefix=DELIVERY_PREFIX,
        noun="webhook delivery",
        exists=lambda cursor: repository.delivery_exists(uow.connection, uow.tenant, endpoint_id, cursor),
    )
    page = await repository.page_deliveries(uow.connection, uow.tenant, endpoint_id, status, request)
    return WebhookDeliveryList(
        object="list",
        url=_deliveries_url(endpoint_id),
        data=[delivery_resource(row) for row in page.rows],
        has_more=page.has_more,
    )


async def retrieve_delivery(uow: UnitOfWork, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
    return delivery_resource(await _delivery(uow, endpoint_id, delivery_id))


async def list_attempts(uow: UnitOfWork, endpoint_id: str, delivery_id: str, request: PageRequest) -> WebhookDeliveryAttemptList:
    await _delivery(uow, endpoint_id, delivery_id)
    await check_cursors(
        request,
        prefix=ATTEMPT_PREFIX,
        noun="webhook delivery attempt",
        exists=lambda cursor: repository.attempt_exists(uow.connection, uow.tenant, cursor),
    )
    page = await repository.page_attempts(uow.connection, uow.tenant, delivery_id, request)
    return WebhookDeliveryAttemptList(
        object="list",
        url=f"{_deliveries_url(endpoint_id)}/{delivery_id}/attempts",
        data=[attempt_resource(row) for row in page.rows],
        has_more=page.has_more,
    )


async def retry_delivery(uow: UnitOfWork, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
    """Due at once, whatever its status: the same `webhook-id`, a fresh timestamp and signature."""
    await _delivery(uow, endpoint_id, delivery_id)
    row = await repository.requeue_delivery(uow.connection, uow.tenant, endpoint_id, delivery_id, uow.now())
    if row is None:  # read just above in this transaction: only a concurrent delete of the row could do it
        raise ResourceMissing(f"No such webhook delivery: '{delivery_id}'", param="delivery")
    resource = delivery_resource(row)
    audit.record(
        uow,
        action_type="webhook_delivery.retry",
        resource_type="webhook_delivery",
        resource_id=delivery_id,
        before=None,
        after=resource,
    )
    return resource


async def recover(uow: UnitOfWork, endpoint_id: str, request: WebhookEndpointRecover) -> WebhookEndpointRecovery:
    """Every dead-lettered delivery of the endpoint since `request.since`, queued again."""
    endpoint = await _endpoint(uow, endpoint_id, for_update=True)
    now = uow.now()
    since = datetime.fromtimestamp(request.since, UTC)
    if since < now - RECOVER_WINDOW_MAX or since > now:
        raise WebhookRecoverWindow("since must be a unix time within the last 14 days.", param="since")
    recovered_at = endpoint["recovered_at"]
    if recovered_at is not None and now - recovered_at < RECOVER_INTERVAL:
        wait_s = math.ceil((recovered_at + RECOVER_INTERVAL - now).total_seconds())
        raise WebhookRecoverRateLimited(
            f"An endpoint recovers at most once a minute: try again in {wait_s} s.", retry_after_s=wait_s
        )
    requeued = await repository.requeue_failed(uow.connection, uow.tenant, endpoint_id, since, now)
    recovery = WebhookEndpointRecovery(
        object="webhook_endpoint_recovery", endpoint=endpoint_id, since=request.since, requeued=requeued
    )
    _audit(uow, "recover", endpoint_id, before=None, after=None)
    return recovery


# --- What the sender decides, each in its own unit of work ---


def dead_letter(uow: UnitOfWork, delivery: AnyRow) -> None:
    """`delivery` has used up its attempts: say so with an event (never delivered to its endpoint)."""
    events.emit(uow, WEBHOOK_ENDPOINT_DELIVERY_EXHAUSTED, delivery_resource(delivery))


async def disable_endpoint(uow: UnitOfWork, endpoint_id: str, reason: str) -> None:
    """Bastion disables an endpoint for `reason`: audited, and announced by an event."""
    row = await repository.disable_endpoint(uow.connection, uow.tenant, endpoint_id, reason, uow.now())
    if row is None:  # already disabled, by its merchant or another sender
        return
    after = endpoint_resource(row)
    _audit(uow, "disable", endpoint_id, before={**after, "status": "enabled", "disabled_reason": None}, after=after)
    events.emit(uow, WEBHOOK_ENDPOINT_DISABLED, after)
