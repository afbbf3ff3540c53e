"""HTTP routes of the connectors context: thin, they only translate."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from bastion.api.context import Authorized, RequestContext
from bastion.connectors import service
from bastion.connectors.resources import ConnectorAccount, ConnectorAccountList, ConnectorList
from bastion.connectors.schemas import ConnectorAccountCreate, ConnectorAccountUpdate
from bastion.platform.http.pagination import page_request, reject_unknown_query_params
from bastion.platform.http.responses import JsonResponse
from bastion.platform.http.schemas import documented, id_schema
from bastion.platform.pagination import PageRequest

connectors_router = APIRouter(prefix="/v1/connectors", tags=["connectors"])
router = APIRouter(prefix="/v1/connector_accounts", tags=["connectors"])

AccountId = Annotated[
    str, Path(max_length=64, json_schema_extra=id_schema(service.PREFIX), description="A connector account id, ca_...")
]
Reader = Annotated[RequestContext, Depends(Authorized("connectors:read"))]
Writer = Annotated[RequestContext, Depends(Authorized("connectors:write"))]


@connectors_router.get(
    "",
    summary="The connectors Bastion knows and what each can do (the feature matrix)",
    responses=documented(ConnectorList),
    dependencies=[Depends(reject_unknown_query_params)],
)
async def list_connectors(context: Reader) -> JsonResponse:
    services = context.services
    return JsonResponse(
        service.list_connectors(
            context.tenant.livemode, available=services.connectors.available, sandbox_url=services.settings.acquirer_url
        )
    )


@router.post(
    "",
    summary="Create a connector account; its credentials are sealed and never shown again",
    responses=documented(ConnectorAccount, writes=True),
)
async def create_account(body: ConnectorAccountCreate, context: Writer) -> JsonResponse:
    sealer, sandbox_url = context.services.connector_credentials, context.services.settings.acquirer_url
    return await context.command(lambda uow: service.create_account(uow, body, sealer, sandbox_url=sandbox_url))


@router.get("/{account_id}", summary="Retrieve a connector account", responses=documented(ConnectorAccount))
async def retrieve_account(account_id: AccountId, context: Reader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.retrieve_account(uow, account_id))


@router.post("/{account_id}", summary="Update a connector account", responses=documented(ConnectorAccount, writes=True))
async def update_account(account_id: AccountId, body: ConnectorAccountUpdate, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: service.update_account(uow, account_id, body))


@router.post(
    "/{account_id}/disable",
    summary="Disable a connector account: it takes no payment any more, and stays readable",
    responses=documented(ConnectorAccount, writes=True),
)
async def disable_account(account_id: AccountId, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: service.disable_account(uow, account_id))


@router.get("", summary="List connector accounts, newest first", responses=documented(ConnectorAccountList))
async def list_accounts(context: Reader, page: Annotated[PageRequest, Depends(page_request(service.PREFIX))]) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.list_accounts(uow, page))
