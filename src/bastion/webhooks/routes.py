"""HTTP routes of the webhooks context: thin, they only translate."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from bastion.api.context import Authorized, RequestContext
from bastion.platform.http.pagination import page_request
from bastion.platform.http.responses import JsonResponse
from bastion.platform.http.schemas import documented, id_schema
from bastion.platform.pagination import PageRequest
from bastion.webhooks import service
from bastion.webhooks.resources import (
    DeletedWebhookEndpoint,
    WebhookDelivery,
    WebhookDeliveryAttemptList,
    WebhookDeliveryList,
    WebhookEndpoint,
    WebhookEndpointList,
    WebhookEndpointRecovery,
    WebhookEndpointWithSecret,
)
from bastion.webhooks.schemas import WebhookEndpointCreate, WebhookEndpointRecover, WebhookEndpointUpdate

router = APIRouter(prefix="/v1/webhook_endpoints", tags=["webhooks"])

EndpointId = Annotated[
    str, Path(max_length=64, json_schema_extra=id_schema(service.PREFIX), description="A webhook endpoint id, we_...")
]
DeliveryId = Annotated[
    str,
    Path(max_length=64, json_schema_extra=id_schema(service.DELIVERY_PREFIX), description="A webhook delivery id, whd_..."),
]
Reader = Annotated[RequestContext, Depends(Authorized("webhooks:read"))]
Writer = Annotated[RequestContext, Depends(Authorized("webhooks:write"))]


@router.post(
    "",
    summary="Create a webhook endpoint; its signing secret is in this answer only",
    responses=documented(WebhookEndpointWithSecret, writes=True),
)
async def create_endpoint(body: WebhookEndpointCreate, context: Writer) -> JsonResponse:
    secrets = context.services.webhook_secrets
    return await context.command(lambda uow: service.create_endpoint(uow, body, secrets), kept=service.without_secret)


@router.get("/{endpoint_id}", summary="Retrieve a webhook endpoint", responses=documented(WebhookEndpoint))
async def retrieve_endpoint(endpoint_id: EndpointId, context: Reader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.retrieve_endpoint(uow, endpoint_id))


@router.post("/{endpoint_id}", summary="Update a webhook endpoint", responses=documented(WebhookEndpoint, writes=True))
async def update_endpoint(endpoint_id: EndpointId, body: WebhookEndpointUpdate, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: service.update_endpoint(uow, endpoint_id, body))


@router.post(
    "/{endpoint_id}/rotate_secret",
    summary="Give a webhook endpoint a new signing secret; the old one signs too for 24 hours",
    responses=documented(WebhookEndpointWithSecret, writes=True),
)
async def rotate_secret(endpoint_id: EndpointId, context: Writer) -> JsonResponse:
    secrets = context.services.webhook_secrets
    return await context.command(lambda uow: service.rotate_secret(uow, endpoint_id, secrets), kept=service.without_secret)


@router.delete("/{endpoint_id}", summary="Delete a webhook endpoint", responses=documented(DeletedWebhookEndpoint, writes=True))
async def delete_endpoint(endpoint_id: EndpointId, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: service.delete_endpoint(uow, endpoint_id))


@router.get("", summary="List webhook endpoints, newest first", responses=documented(WebhookEndpointList))
async def list_endpoints(context: Reader, page: Annotated[PageRequest, Depends(page_request(service.PREFIX))]) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.list_endpoints(uow, page))


@router.post(
    "/{endpoint_id}/recover",
    summary="Queue again every dead-lettered delivery since a moment (once a minute)",
    responses=documented(WebhookEndpointRecovery, writes=True),
)
async def recover(endpoint_id: EndpointId, body: WebhookEndpointRecover, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: service.recover(uow, endpoint_id, body))


@router.get(
    "/{endpoint_id}/deliveries",
    summary="List an endpoint's deliveries, newest first",
    responses=documented(WebhookDeliveryList),
)
async def list_deliveries(
    endpoint_id: EndpointId,
    context: Reader,
    page: Annotated[PageRequest, Depends(page_request(service.DELIVERY_PREFIX))],
    status: Annotated[
        Literal["pending", "succeeded", "failed"] | None, Query(description="Only deliveries in this status")
    ] = None,
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.list_deliveries(uow, endpoint_id, status, page))


@router.get(
    "/{endpoint_id}/deliveries/{delivery_id}", summary="Retrieve a webhook delivery", responses=documented(WebhookDelivery)
)
async def retrieve_delivery(endpoint_id: EndpointId, delivery_id: DeliveryId, context: Reader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.retrieve_delivery(uow, endpoint_id, delivery_id))


@router.get(
    "/{endpoint_id}/deliveries/{delivery_id}/attempts",
    summary="List a delivery's attempts, newest first",
    responses=documented(WebhookDeliveryAttemptList),
)
async def list_attempts(
    endpoint_id: EndpointId,
    delivery_id: DeliveryId,
    context: Reader,
    page: Annotated[PageRequest, Depends(page_request(service.ATTEMPT_PREFIX))],
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.list_attempts(uow, endpoint_id, delivery_id, page))


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/retry",
    summary="Send a delivery again now: same webhook-id, fresh timestamp and signature",
    responses=documented(WebhookDelivery, writes=True),
)
async def retry_delivery(endpoint_id: EndpointId, delivery_id: DeliveryId, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: service.retry_delivery(uow, endpoint_id, delivery_id))
