"""HTTP routes of the routing context: thin, they only translate."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from bastion.api.context import Authorized, RequestContext
from bastion.platform.http.pagination import page_request, reject_unknown_query_params
from bastion.platform.http.responses import JsonResponse
from bastion.platform.http.schemas import documented, id_schema
from bastion.platform.pagination import PageRequest
from bastion.routing import service
from bastion.routing.resources import RoutingRules, RoutingRulesList
from bastion.routing.schemas import RoutingRulesCreate

router = APIRouter(prefix="/v1/routing_rules", tags=["routing"])

RoutingRulesId = Annotated[
    str, Path(max_length=64, json_schema_extra=id_schema(service.PREFIX), description="A routing rules id, rr_...")
]
Reader = Annotated[RequestContext, Depends(Authorized("routing:read"))]
Writer = Annotated[RequestContext, Depends(Authorized("routing:write"))]


@router.post(
    "",
    summary="Create a version of the routing rules (a draft, checked now)",
    responses=documented(RoutingRules, writes=True),
)
async def create_rules(body: RoutingRulesCreate, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: service.create_rules(uow, body))


# Before the route of an id: "live" is not one.
@router.get(
    "/live",
    summary="The live routing rules, which decide every payment of this mode",
    responses=documented(RoutingRules),
    dependencies=[Depends(reject_unknown_query_params)],
)
async def retrieve_live_rules(context: Reader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.retrieve_live_rules(uow))


@router.get("/{routing_rules_id}", summary="Retrieve a version of the routing rules", responses=documented(RoutingRules))
async def retrieve_rules(routing_rules_id: RoutingRulesId, context: Reader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.retrieve_rules(uow, routing_rules_id))


@router.post(
    "/{routing_rules_id}/activate",
    summary="Make a version live; the live one is retired. Activating a retired version rolls back",
    responses=documented(RoutingRules, writes=True),
)
async def activate_rules(routing_rules_id: RoutingRulesId, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: service.activate_rules(uow, routing_rules_id))


@router.get("", summary="List the versions of the routing rules, newest first", responses=documented(RoutingRulesList))
async def list_rules(context: Reader, page: Annotated[PageRequest, Depends(page_request(service.PREFIX))]) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.list_rules(uow, page))
