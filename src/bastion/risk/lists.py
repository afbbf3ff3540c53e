"""Lists: the values a rule names as `@alias` (card fingerprints, emails, domains, IP addresses
and ranges, device ids, BINs, countries), each item written down as its kind compares it
(docs/risk.md, Lists). Every change is audited."""

from bastion import audit
from bastion.kernel.clock import unix_seconds
from bastion.kernel.errors import InvalidRequest, InvariantViolated, ResourceMissing
from bastion.kernel.ids import is_id, new_id
from bastion.platform.db import AnyRow, UnitOfWork
from bastion.platform.pagination import PageRequest, check_cursors
from bastion.risk import repository
from bastion.risk.attributes import ListKind
from bastion.risk.domain import ITEMS_PER_LIST_MAX, LISTS_PER_MERCHANT_MAX, list_item
from bastion.risk.errors import RiskListAliasTaken, RiskListFull, RiskListInUse
from bastion.risk.resources import (
    DeletedRiskList,
    DeletedRiskListItem,
    RiskList,
    RiskListItem,
    RiskListItemList,
    RiskListList,
)
from bastion.risk.rulesets import rulesets_naming
from bastion.risk.schemas import RiskListCreate, RiskListItemCreate


def list_resource(row: AnyRow) -> RiskList:
    return RiskList(
        id=row["id"],
        object="risk.list",
        alias=row["alias"],
        name=row["name"],
        item_type=row["item_type"],
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )


def item_resource(row: AnyRow) -> RiskListItem:
    return RiskListItem(
        id=row["id"],
        object="risk.list_item",
        list=row["list_id"],
        value=row["value"],
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )


async def create_list(uow: UnitOfWork, request: RiskListCreate) -> RiskList:
    await repository.lock_configuration(uow.connection, uow.tenant)
    if await repository.count_lists(uow.connection, uow.tenant) >= LISTS_PER_MERCHANT_MAX:
        raise RiskListFull(f"A merchant has at most {LISTS_PER_MERCHANT_MAX} lists in each mode.", param="alias")
    row = await repository.insert_list(
        uow.connection,
        uow.tenant,
        {
            "id": new_id("rsl"),
            "alias": request.alias,
            "name": request.name,
            "item_type": request.item_type,
            "created_at": uow.now(),
        },
    )
    if row is None:
        raise RiskListAliasTaken(f"Another list is @{request.alias} already.", param="alias")
    resource = list_resource(row)
    audit.record(
        uow, action_type="risk.list.create", resource_type="risk.list", resource_id=row["id"], before=None, after=resource
    )
    return resource


async def _list(uow: UnitOfWork, list_id: str) -> AnyRow:
    row = await repository.get_list(uow.connection, uow.tenant, list_id) if is_id(list_id, "rsl") else None
    if row is None:
        raise ResourceMissing(f"No such list: '{list_id}'", param="id")
    return row


async def retrieve_list(uow: UnitOfWork, list_id: str) -> RiskList:
    return list_resource(await _list(uow, list_id))


async def list_lists(uow: UnitOfWork, request: PageRequest) -> RiskListList:
    await check_cursors(
        request, prefix="rsl", noun="list", exists=lambda cursor: repository.list_exists(uow.connection, uow.tenant, cursor)
    )
    page = await repository.page_lists(uow.connection, uow.tenant, request)
    return RiskListList(
        object="list", url="/v1/risk/lists", data=[list_resource(row) for row in page.rows], has_more=page.has_more
    )


async def delete_list(uow: UnitOfWork, list_id: str) -> DeletedRiskList:
    """The list and its items, unless a live or shadow ruleset names it."""
    await repository.lock_configuration(uow.connection, uow.tenant)
    row = await _list(uow, list_id)
    naming = await rulesets_naming(uow, row["alias"])
    if naming:
        versions = ", ".join(f"{ruleset['id']} ({ruleset['status']})" for ruleset in naming)
        raise RiskListInUse(f"@{row['alias']} is named by the rules of {versions}: retire it first.", param="id")
    await repository.delete_list(uow.connection, uow.tenant, list_id)
    audit.record(
        uow, action_type="risk.list.delete", resource_type="risk.list", resource_id=list_id, before=list_resource(row), after=None
    )
    return DeletedRiskList(id=list_id, object="risk.list", deleted=True)


async def add_item(uow: UnitOfWork, list_id: str, request: RiskListItemCreate) -> RiskListItem:
    """The value added, or the item that holds it already."""
    await repository.lock_configuration(uow.connection, uow.tenant)
    row = await _list(uow, list_id)
    try:
        value = list_item(ListKind(row["item_type"]), request.value)
    except ValueError as refused:
        raise InvalidRequest(f"An item of a list of {row['item_type']} {refused}.", param="value") from None
    existing = await repository.item_by_value(uow.connection, uow.tenant, list_id, value)
    if existing is not None:
        return item_resource(existing)
    if await repository.count_items(uow.connection, uow.tenant, list_id) >= ITEMS_PER_LIST_MAX:
        raise RiskListFull(f"A list holds at most {ITEMS_PER_LIST_MAX} items.", param="value")
    item = await repository.insert_item(
        uow.connection, uow.tenant, {"id": new_id("rsli"), "list_id": list_id, "value": value, "created_at": uow.now()}
    )
    if item is None:
        raise InvariantViolated("under the configuration lock, nobody adds the value meanwhile")
    resource = item_resource(item)
    audit.record(
        uow,
        action_type="risk.list_item.create",
        resource_type="risk.list_item",
        resource_id=item["id"],
        before=None,
        after=resource,
    )
    return resource


async def _item(uow: UnitOfWork, list_id: str, item_id: str) -> AnyRow:
    await _list(uow, list_id)
    row = await repository.get_item(uow.connection, uow.tenant, list_id, item_id) if is_id(item_id, "rsli") else None
    if row is None:
        raise ResourceMissing(f"No such list item: '{item_id}'", param="item_id")
    return row


async def list_items(uow: UnitOfWork, list_id: str, request: PageRequest) -> RiskListItemList:
    await _list(uow, list_id)
    await check_cursors(
        request,
        prefix="rsli",
        noun="list item",
        exists=lambda cursor: repository.item_exists(uow.connection, uow.tenant, list_id, cursor),
    )
    page = await repository.page_items(uow.connection, uow.tenant, list_id, request)
    return RiskListItemList(
        object="list",
        url=f"/v1/risk/lists/{list_id}/items",
        data=[item_resource(row) for row in page.rows],
        has_more=page.has_more,
    )


async def delete_item(uow: UnitOfWork, list_id: str, item_id: str) -> DeletedRiskListItem:
    row = await _item(uow, list_id, item_id)
    await repository.delete_item(uow.connection, uow.tenant, list_id, item_id)
    audit.record(
        uow,
        action_type="risk.list_item.delete",
        resource_type="risk.list_item",
        resource_id=item_id,
        before=item_resource(row),
        after=None,
    )
    return DeletedRiskListItem(id=item_id, object="risk.list_item", deleted=True)
