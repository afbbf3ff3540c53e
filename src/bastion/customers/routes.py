"""HTTP routes of the customers context: thin, they only translate."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from bastion.api.context import Authorized, RequestContext
from bastion.customers import service
from bastion.customers.resources import Customer, CustomerList, DeletedCustomer
from bastion.customers.schemas import CustomerCreate, CustomerUpdate
from bastion.platform.http.pagination import page_request
from bastion.platform.http.responses import JsonResponse
from bastion.platform.http.schemas import documented, id_schema
from bastion.platform.pagination import PageRequest

router = APIRouter(prefix="/v1/customers", tags=["customers"])

CustomerId = Annotated[str, Path(max_length=64, json_schema_extra=id_schema("cus"), description="A customer id, cus_...")]
Reader = Annotated[RequestContext, Depends(Authorized("customers:read"))]
Writer = Annotated[RequestContext, Depends(Authorized("customers:write"))]


@router.post("", summary="Create a customer", responses=documented(Customer, writes=True))
async def create_customer(body: CustomerCreate, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: service.create_customer(uow, body))


@router.get("/{customer_id}", summary="Retrieve a customer", responses=documented(Customer | DeletedCustomer))
async def retrieve_customer(customer_id: CustomerId, context: Reader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.retrieve_customer(uow, customer_id))


@router.post("/{customer_id}", summary="Update a customer", responses=documented(Customer, writes=True))
async def update_customer(customer_id: CustomerId, body: CustomerUpdate, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: service.update_customer(uow, customer_id, body))


@router.delete("/{customer_id}", summary="Delete a customer", responses=documented(DeletedCustomer, writes=True))
async def delete_customer(customer_id: CustomerId, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: service.delete_customer(uow, customer_id))


@router.get("", summary="List customers, newest first", responses=documented(CustomerList))
async def list_customers(
    context: Reader,
    page: Annotated[PageRequest, Depends(page_request("cus"))],
    email: Annotated[str | None, Query(max_length=512, description="Only customers with this exact email")] = None,
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.list_customers(uow, page, email))
