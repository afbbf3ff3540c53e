"""Use cases of the customers context. Each takes the caller's unit of work and never commits."""

from collections.abc import Mapping, Sequence
from typing import Any

from bastion import audit, events
from bastion.customers import repository
from bastion.customers.events import CUSTOMER_CREATED, CUSTOMER_DELETED, CUSTOMER_UPDATED
from bastion.customers.resources import Customer, CustomerList, DeletedCustomer
from bastion.customers.schemas import CustomerCreate, CustomerUpdate
from bastion.kernel.clock import unix_seconds
from bastion.kernel.errors import ResourceMissing
from bastion.kernel.ids import is_id, new_id
from bastion.kernel.metadata import merge_metadata
from bastion.platform.db import AnyRow, UnitOfWork
from bastion.platform.pagination import PageRequest, check_cursors

_CUSTOMER_FIELDS = ("email", "name", "phone", "description")


def customer_resource(row: AnyRow) -> Customer:
    return Customer(
        id=row["id"],
        object="customer",
        email=row["email"],
        name=row["name"],
        phone=row["phone"],
        description=row["description"],
        metadata=row["metadata"],
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )


def deleted_customer_resource(customer_id: str) -> DeletedCustomer:
    return DeletedCustomer(id=customer_id, object="customer", deleted=True)


def customer_list(rows: Sequence[AnyRow], has_more: bool) -> CustomerList:
    return CustomerList(object="list", url="/v1/customers", data=[customer_resource(row) for row in rows], has_more=has_more)


async def live_customer(uow: UnitOfWork, customer_id: str, *, for_update: bool = False, param: str = "id") -> AnyRow:
    """The customer, not deleted, or `resource_missing` naming `param`."""
    row = (
        await repository.get_customer(uow.connection, uow.tenant, customer_id, for_update=for_update)
        if is_id(customer_id, "cus")
        else None
    )
    if row is None or row["deleted_at"] is not None:
        raise ResourceMissing(f"No such customer: '{customer_id}'", param=param)
    return row


async def create_customer(uow: UnitOfWork, request: CustomerCreate) -> Customer:
    moment = uow.now()
    row = await repository.insert_customer(
        uow.connection,
        customer_id=new_id("cus"),
        merchant_id=uow.tenant.merchant_id,
        livemode=uow.tenant.livemode,
        email=request.email,
        name=request.name,
        phone=request.phone,
        description=request.description,
        metadata=merge_metadata({}, request.metadata),
        created_at=moment,
    )
    resource = customer_resource(row)
    audit.record(uow, action_type="customer.create", resource_type="customer", resource_id=row["id"], before=None, after=resource)
    events.emit(uow, CUSTOMER_CREATED, resource)
    return resource


async def retrieve_customer(uow: UnitOfWork, customer_id: str) -> Customer | DeletedCustomer:
    row = await repository.get_customer(uow.connection, uow.tenant, customer_id) if is_id(customer_id, "cus") else None
    if row is None:
        raise ResourceMissing(f"No such customer: '{customer_id}'", param="id")
    if row["deleted_at"] is not None:
        return deleted_customer_resource(row["id"])
    return customer_resource(row)


async def update_customer(uow: UnitOfWork, customer_id: str, request: CustomerUpdate) -> Customer:
    current = await live_customer(uow, customer_id, for_update=True)
    changes: dict[str, Any] = {name: getattr(request, name) for name in _CUSTOMER_FIELDS if name in request.model_fields_set}
    if "metadata" in request.model_fields_set:
        changes["metadata"] = merge_metadata(current["metadata"], request.metadata)
    before = customer_resource(current)
    fields = {name: current[name] for name in (*_CUSTOMER_FIELDS, "metadata")} | changes
    row = await repository.update_customer(uow.connection, uow.tenant, customer_id, **fields, updated_at=uow.now())
    after = customer_resource(row)
    # The changed fields are named at run time, so both answers are read here as plain mappings.
    old: Mapping[str, object] = before
    new: Mapping[str, object] = after
    previous = {key: old[key] for key in changes if old[key] != new[key]}
    audit.record(uow, action_type="customer.update", resource_type="customer", resource_id=row["id"], before=before, after=after)
    events.emit(uow, CUSTOMER_UPDATED, after, previous_attributes=previous)
    return after


async def delete_customer(uow: UnitOfWork, customer_id: str) -> DeletedCustomer:
    current = await live_customer(uow, customer_id, for_update=True)
    before = customer_resource(current)
    await repository.delete_customer(uow.connection, uow.tenant, customer_id, uow.now())
    audit.record(uow, action_type="customer.delete", resource_type="customer", resource_id=customer_id, before=before, after=None)
    events.emit(uow, CUSTOMER_DELETED, before)
    return deleted_customer_resource(customer_id)


async def list_customers(uow: UnitOfWork, request: PageRequest, email: str | None) -> CustomerList:
    await check_cursors(
        request,
        prefix="cus",
        noun="customer",
        exists=lambda cursor: repository.live_customer_exists(uow.connection, uow.tenant, cursor),
    )
    page = await repository.page_customers(uow.connection, uow.tenant, request, email)
    return customer_list(page.rows, page.has_more)
