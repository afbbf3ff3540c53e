"""Use cases of the webhooks context. Each takes the caller's unit of work and never commits."""

from collections.abc import Mapping
from typing import Any

from bastion import audit, events
from bastion.kernel.clock import unix_seconds
from bastion.kernel.errors import InvalidRequest, ResourceMissing
from bastion.kernel.ids import is_id, new_id
from bastion.kernel.metadata import merge_metadata
from bastion.platform.db import AnyRow, UnitOfWork
from bastion.platform.http.outbound import DestinationPolicy, check_url
from bastion.platform.pagination import PageRequest, check_cursors
from bastion.webhooks import repository
from bastion.webhooks.domain import ENDPOINTS_PER_MODE_MAX, ROTATION_OVERLAP, event_pattern_problem, new_secret
from bastion.webhooks.errors import WebhookEndpointsFull
from bastion.webhooks.resources import DeletedWebhookEndpoint, WebhookEndpoint, WebhookEndpointList, WebhookEndpointWithSecret
from bastion.webhooks.schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from bastion.webhooks.secrets import EndpointSecrets

PREFIX = "we"
_EDITABLE = ("url", "enabled_events", "description", "metadata", "ordered", "disabled")


def endpoint_resource(row: AnyRow) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"],
        object="webhook_endpoint",
        url=row["url"],
        enabled_events=list(row["enabled_events"]),
        description=row["description"],
        metadata=row["metadata"],
        ordered=row["ordered"],
        status="disabled" if row["disabled"] else "enabled",
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
    for name in ("url", "enabled_events", "ordered", "disabled"):
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
    for name in ("ordered", "disabled"):
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
