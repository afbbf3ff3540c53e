"""HTTP routes of the risk context: thin, they only translate."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from bastion.api.context import Authorized, RequestContext
from bastion.platform.http.pagination import page_request, reject_unknown_query_params
from bastion.platform.http.responses import JsonResponse
from bastion.platform.http.schemas import documented, id_schema
from bastion.platform.pagination import PageRequest
from bastion.risk import lists, merchant_settings, rulesets
from bastion.risk.attributes import CATALOGUE
from bastion.risk.domain import RulesetStatus
from bastion.risk.resources import (
    AttributeList,
    AttributeResource,
    DeletedRiskList,
    DeletedRiskListItem,
    RiskList,
    RiskListItem,
    RiskListItemList,
    RiskListList,
    RiskSettings,
    Ruleset,
    RulesetList,
)
from bastion.risk.schemas import RiskListCreate, RiskListItemCreate, RiskSettingsUpdate, RulesetActivate, RulesetCreate

router = APIRouter(prefix="/v1/risk", tags=["risk"])

RulesetId = Annotated[str, Path(max_length=64, json_schema_extra=id_schema("rs"), description="A ruleset id, rs_...")]
ListId = Annotated[str, Path(max_length=64, json_schema_extra=id_schema("rsl"), description="A list id, rsl_...")]
ItemId = Annotated[str, Path(max_length=64, json_schema_extra=id_schema("rsli"), description="A list item id, rsli_...")]
Reader = Annotated[RequestContext, Depends(Authorized("risk:read"))]
KnownQuery = Depends(reject_unknown_query_params)
Writer = Annotated[RequestContext, Depends(Authorized("risk:write"))]


@router.get(
    "/attributes",
    summary="The attributes a rule may name, with their types",
    responses=documented(AttributeList),
    dependencies=[KnownQuery],
)
async def list_attributes(_context: Reader) -> JsonResponse:
    data = [
        AttributeResource(name=name, type=attribute.type, list_type=attribute.list_kind, description=attribute.description)
        for name, attribute in CATALOGUE.items()
    ]
    return JsonResponse(AttributeList(object="list", url="/v1/risk/attributes", data=data, has_more=False))


@router.get(
    "/settings",
    summary="The merchant's assessment settings in this mode",
    responses=documented(RiskSettings),
    dependencies=[KnownQuery],
)
async def retrieve_settings(context: Reader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await merchant_settings.retrieve_settings(uow))


@router.post(
    "/settings", summary="Set the assessment's time budget and failure policy", responses=documented(RiskSettings, writes=True)
)
async def update_settings(body: RiskSettingsUpdate, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: merchant_settings.update_settings(uow, body))


@router.post("/rulesets", summary="Create a ruleset (a draft, checked now)", responses=documented(Ruleset, writes=True))
async def create_ruleset(body: RulesetCreate, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: rulesets.create_ruleset(uow, body))


@router.get("/rulesets/{ruleset_id}", summary="Retrieve a ruleset", responses=documented(Ruleset))
async def retrieve_ruleset(ruleset_id: RulesetId, context: Reader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await rulesets.retrieve_ruleset(uow, ruleset_id))


@router.get("/rulesets", summary="List rulesets, newest first", responses=documented(RulesetList))
async def list_rulesets(
    context: Reader,
    page: Annotated[PageRequest, Depends(page_request("rs"))],
    status: Annotated[RulesetStatus | None, Query(description="Only rulesets in this status")] = None,
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await rulesets.list_rulesets(uow, page, status))


@router.post(
    "/rulesets/{ruleset_id}/activate",
    summary="Make a ruleset live (or shadow); the one it replaces is retired. Activating a retired one rolls back",
    responses=documented(Ruleset, writes=True),
)
async def activate_ruleset(ruleset_id: RulesetId, body: RulesetActivate, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: rulesets.activate_ruleset(uow, ruleset_id, body))


@router.post(
    "/rulesets/{ruleset_id}/retire", summary="Retire a live or shadow ruleset", responses=documented(Ruleset, writes=True)
)
async def retire_ruleset(ruleset_id: RulesetId, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: rulesets.retire_ruleset(uow, ruleset_id))


@router.post("/lists", summary="Create a list that rules name as @alias", responses=documented(RiskList, writes=True))
async def create_list(body: RiskListCreate, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: lists.create_list(uow, body))


@router.get("/lists/{list_id}", summary="Retrieve a list", responses=documented(RiskList))
async def retrieve_list(list_id: ListId, context: Reader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await lists.retrieve_list(uow, list_id))


@router.get("/lists", summary="List lists, newest first", responses=documented(RiskListList))
async def list_lists(context: Reader, page: Annotated[PageRequest, Depends(page_request("rsl"))]) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await lists.list_lists(uow, page))


@router.delete(
    "/lists/{list_id}",
    summary="Delete a list and its items, unless a live or shadow ruleset names it",
    responses=documented(DeletedRiskList, writes=True),
)
async def delete_list(list_id: ListId, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: lists.delete_list(uow, list_id))


@router.post("/lists/{list_id}/items", summary="Add a value to a list", responses=documented(RiskListItem, writes=True))
async def add_item(list_id: ListId, body: RiskListItemCreate, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: lists.add_item(uow, list_id, body))


@router.get("/lists/{list_id}/items", summary="List a list's items, newest first", responses=documented(RiskListItemList))
async def list_items(
    list_id: ListId, context: Reader, page: Annotated[PageRequest, Depends(page_request("rsli"))]
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await lists.list_items(uow, list_id, page))


@router.delete(
    "/lists/{list_id}/items/{item_id}",
    summary="Remove a value from a list",
    responses=documented(DeletedRiskListItem, writes=True),
)
async def delete_item(list_id: ListId, item_id: ItemId, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: lists.delete_item(uow, list_id, item_id))
