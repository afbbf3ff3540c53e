"""HTTP routes of the payments context: thin, they only translate."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from bastion.api.context import Authorized, RequestContext
from bastion.payments import service
from bastion.payments.resources import PaymentMethod, PaymentMethodList
from bastion.payments.schemas import PaymentMethodCreate
from bastion.platform.http.pagination import page_request
from bastion.platform.http.responses import JsonResponse
from bastion.platform.http.schemas import documented, id_schema
from bastion.platform.pagination import PageRequest

router = APIRouter(prefix="/v1/payment_methods", tags=["payment methods"])

PaymentMethodId = Annotated[
    str, Path(max_length=64, json_schema_extra=id_schema("pm"), description="A payment method id, pm_...")
]
PaymentMethodReader = Annotated[RequestContext, Depends(Authorized("payment_methods:read"))]
PaymentMethodWriter = Annotated[RequestContext, Depends(Authorized("payment_methods:write"))]


@router.post("", summary="Create a card payment method from a single-use token", responses=documented(PaymentMethod, writes=True))
async def create_payment_method(body: PaymentMethodCreate, context: PaymentMethodWriter) -> JsonResponse:
    phases = context.services.commands.registry[service.CREATE_PAYMENT_METHOD]
    return await context.phased(phases, lambda uow: service.start_payment_method(uow, body))


@router.get("/{payment_method_id}", summary="Retrieve a payment method", responses=documented(PaymentMethod))
async def retrieve_payment_method(payment_method_id: PaymentMethodId, context: PaymentMethodReader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.retrieve_payment_method(uow, payment_method_id))


@router.get("", summary="List payment methods, newest first", responses=documented(PaymentMethodList))
async def list_payment_methods(
    context: PaymentMethodReader,
    page: Annotated[PageRequest, Depends(page_request("pm"))],
    customer: Annotated[
        str | None, Query(max_length=64, json_schema_extra=id_schema("cus"), description="Only this customer's payment methods")
    ] = None,
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await service.list_payment_methods(uow, page, customer))
