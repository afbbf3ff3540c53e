"""HTTP routes of the payments context: thin, they only translate."""

from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request

from bastion.api.context import Authorized, RequestContext
from bastion.payments import (
    books,
    charges,
    disputes,
    expansion,
    intents,
    notifications,
    refunds,
    review_decisions,
    reviews,
    service,
)
from bastion.payments.connectors import Connector
from bastion.payments.resources import (
    Balance,
    BalanceTransaction,
    BalanceTransactionList,
    CardErrorBody,
    Charge,
    ChargeList,
    Dispute,
    DisputeList,
    PaymentIntent,
    PaymentIntentList,
    PaymentMethod,
    PaymentMethodList,
    Refund,
    RefundList,
    Review,
    ReviewList,
)
from bastion.payments.schemas import (
    EXPANSIONS_MAX,
    ChargeExpansion,
    ChargeListExpansion,
    DisputeUpdate,
    IntentExpansion,
    IntentListExpansion,
    PaymentIntentCancel,
    PaymentIntentCapture,
    PaymentIntentConfirm,
    PaymentIntentCreate,
    PaymentIntentUpdate,
    PaymentMethodCreate,
    PaymentMethodExpansion,
    PaymentMethodListExpansion,
    RefundCreate,
    RefundExpansion,
    RefundListExpansion,
)
from bastion.platform.http.pagination import CreatedRange, created_range, page_request, reject_unknown_query_params
from bastion.platform.http.responses import JsonResponse
from bastion.platform.http.schemas import Currency, documented, id_schema
from bastion.platform.logging import request_id_var
from bastion.platform.pagination import PageRequest
from bastion.platform.settings import SANDBOX_CONNECTOR

router = APIRouter(prefix="/v1/payment_methods", tags=["payment methods"])

Expanded = TypeVar("Expanded", bound=str)
# `expand[0]=customer` (the SDKs' spelling, `bastion.platform.http.forms`) or `expand=customer`.
ExpandQuery = Annotated[
    list[Expanded] | None,
    Query(max_length=EXPANSIONS_MAX, description="Fields to answer with the object in place of its id"),
]


async def _expanded(context: RequestContext, response: JsonResponse, fields: Sequence[str]) -> JsonResponse:
    """A command's answer with `fields` expanded, read once the command has committed: a replay
    shows the objects as they are now."""
    if not fields or response.status_code != 200:
        return response
    async with context.read() as uow:
        answer = await expansion.expanded(uow, orjson.loads(response.body), fields)
    # The command's own headers (`Idempotency-Key`, `Idempotent-Replayed`), not its body's length.
    kept = {name: value for name, value in response.headers.items() if name in ("idempotency-key", "idempotent-replayed")}
    return JsonResponse(answer, headers=kept)


PaymentMethodId = Annotated[
    str, Path(max_length=64, json_schema_extra=id_schema("pm"), description="A payment method id, pm_...")
]
PaymentMethodReader = Annotated[RequestContext, Depends(Authorized("payment_methods:read"))]
PaymentMethodWriter = Annotated[RequestContext, Depends(Authorized("payment_methods:write"))]


@router.post("", summary="Create a card payment method from a single-use token", responses=documented(PaymentMethod, writes=True))
async def create_payment_method(body: PaymentMethodCreate, context: PaymentMethodWriter) -> JsonResponse:
    phases = context.services.commands.registry[service.CREATE_PAYMENT_METHOD]
    return await _expanded(
        context, await context.phased(phases, lambda uow: service.start_payment_method(uow, body)), body.expand
    )


@router.get("/{payment_method_id}", summary="Retrieve a payment method", responses=documented(PaymentMethod))
async def retrieve_payment_method(
    payment_method_id: PaymentMethodId, context: PaymentMethodReader, expand: ExpandQuery[PaymentMethodExpansion] = None
) -> JsonResponse:
    async with context.read() as uow:
        payment_method = await service.retrieve_payment_method(uow, payment_method_id)
        return JsonResponse(await expansion.expanded(uow, payment_method, expand or ()))


@router.get("", summary="List payment methods, newest first", responses=documented(PaymentMethodList))
async def list_payment_methods(
    context: PaymentMethodReader,
    page: Annotated[PageRequest, Depends(page_request("pm"))],
    customer: Annotated[
        str | None, Query(max_length=64, json_schema_extra=id_schema("cus"), description="Only this customer's payment methods")
    ] = None,
    expand: ExpandQuery[PaymentMethodListExpansion] = None,
) -> JsonResponse:
    async with context.read() as uow:
        listed = await service.list_payment_methods(uow, page, customer)
        return JsonResponse(await expansion.expanded_list(uow, listed, expand or ()))


intents_router = APIRouter(prefix="/v1/payment_intents", tags=["payment intents"])
charges_router = APIRouter(prefix="/v1/charges", tags=["charges"])

PaymentIntentId = Annotated[
    str, Path(max_length=64, json_schema_extra=id_schema("pi"), description="A payment intent id, pi_...")
]
ChargeId = Annotated[str, Path(max_length=64, json_schema_extra=id_schema("ch"), description="A charge id, ch_...")]
IntentReader = Annotated[RequestContext, Depends(Authorized("payment_intents:read"))]
IntentWriter = Annotated[RequestContext, Depends(Authorized("payment_intents:write"))]
ChargeReader = Annotated[RequestContext, Depends(Authorized("charges:read"))]
_CARD_ERROR: dict[int | str, dict[str, Any]] = {
    402: {"model": CardErrorBody, "description": "The card was declined: `card_error` with the charge and the intent"}
}


@intents_router.post(
    "",
    summary="Create a PaymentIntent (and confirm it at once with confirm: true)",
    responses=documented(PaymentIntent, writes=True) | _CARD_ERROR,
)
async def create_payment_intent(body: PaymentIntentCreate, context: IntentWriter) -> JsonResponse:
    if body.confirm:
        phases = context.services.commands.registry[intents.CONFIRM]
        answer = await context.phased(phases, lambda uow: intents.start_create_and_confirm(uow, body))
    else:
        answer = await context.command(lambda uow: intents.create_intent(uow, body))
    return await _expanded(context, answer, body.expand)


@intents_router.get("/{intent_id}", summary="Retrieve a PaymentIntent", responses=documented(PaymentIntent))
async def retrieve_payment_intent(
    intent_id: PaymentIntentId, context: IntentReader, expand: ExpandQuery[IntentExpansion] = None
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await expansion.expanded(uow, await intents.retrieve_intent(uow, intent_id), expand or ()))


@intents_router.get("", summary="List PaymentIntents, newest first", responses=documented(PaymentIntentList))
async def list_payment_intents(
    context: IntentReader,
    page: Annotated[PageRequest, Depends(page_request("pi"))],
    created: Annotated[CreatedRange, Depends(created_range)],
    customer: Annotated[
        str | None, Query(max_length=64, json_schema_extra=id_schema("cus"), description="Only this customer's intents")
    ] = None,
    expand: ExpandQuery[IntentListExpansion] = None,
) -> JsonResponse:
    async with context.read() as uow:
        listed = await intents.list_intents(uow, page, customer_id=customer, created_gte=created.gte, created_lte=created.lte)
        return JsonResponse(await expansion.expanded_list(uow, listed, expand or ()))


@intents_router.post(
    "/{intent_id}", summary="Update a PaymentIntent that is not final", responses=documented(PaymentIntent, writes=True)
)
async def update_payment_intent(intent_id: PaymentIntentId, body: PaymentIntentUpdate, context: IntentWriter) -> JsonResponse:
    return await _expanded(context, await context.command(lambda uow: intents.update_intent(uow, intent_id, body)), body.expand)


@intents_router.post(
    "/{intent_id}/confirm",
    summary="Confirm a PaymentIntent: authorize (and capture, if automatic) its payment method",
    responses=documented(PaymentIntent, writes=True) | _CARD_ERROR,
)
async def confirm_payment_intent(
    intent_id: PaymentIntentId, context: IntentWriter, body: PaymentIntentConfirm | None = None
) -> JsonResponse:
    request = body or PaymentIntentConfirm()
    phases = context.services.commands.registry[intents.CONFIRM]
    answer = await context.phased(phases, lambda uow: intents.start_confirm(uow, intent_id, request))
    return await _expanded(context, answer, request.expand)


@intents_router.post(
    "/{intent_id}/capture",
    summary="Capture an authorized PaymentIntent, in full or in part (the rest is released)",
    responses=documented(PaymentIntent, writes=True),
)
async def capture_payment_intent(
    intent_id: PaymentIntentId, context: IntentWriter, body: PaymentIntentCapture | None = None
) -> JsonResponse:
    request = body or PaymentIntentCapture()
    phases = context.services.commands.registry[intents.CAPTURE]
    answer = await context.phased(phases, lambda uow: intents.start_capture(uow, intent_id, request))
    return await _expanded(context, answer, request.expand)


@intents_router.post(
    "/{intent_id}/cancel",
    summary="Cancel a PaymentIntent that is not final (an authorization is voided)",
    responses=documented(PaymentIntent, writes=True),
)
async def cancel_payment_intent(
    intent_id: PaymentIntentId, context: IntentWriter, body: PaymentIntentCancel | None = None
) -> JsonResponse:
    request = body or PaymentIntentCancel()
    phases = context.services.commands.registry[intents.CANCEL]
    answer = await context.phased(phases, lambda uow: intents.start_cancel(uow, intent_id, request.cancellation_reason))
    return await _expanded(context, answer, request.expand)


@charges_router.get("/{charge_id}", summary="Retrieve a charge", responses=documented(Charge))
async def retrieve_charge(
    charge_id: ChargeId, context: ChargeReader, expand: ExpandQuery[ChargeExpansion] = None
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await expansion.expanded(uow, await charges.retrieve_charge(uow, charge_id), expand or ()))


@charges_router.get("", summary="List charges, newest first", responses=documented(ChargeList))
async def list_charges(
    context: ChargeReader,
    page: Annotated[PageRequest, Depends(page_request("ch"))],
    payment_intent: Annotated[
        str | None, Query(max_length=64, json_schema_extra=id_schema("pi"), description="Only this intent's charges")
    ] = None,
    expand: ExpandQuery[ChargeListExpansion] = None,
) -> JsonResponse:
    async with context.read() as uow:
        listed = await charges.list_charges(uow, page, payment_intent)
        return JsonResponse(await expansion.expanded_list(uow, listed, expand or ()))


refunds_router = APIRouter(prefix="/v1/refunds", tags=["refunds"])
RefundId = Annotated[str, Path(max_length=64, json_schema_extra=id_schema("re"), description="A refund id, re_...")]
RefundReader = Annotated[RequestContext, Depends(Authorized("refunds:read"))]
RefundWriter = Annotated[RequestContext, Depends(Authorized("refunds:write"))]


@refunds_router.post("", summary="Refund all or part of a captured payment", responses=documented(Refund, writes=True))
async def create_refund(body: RefundCreate, context: RefundWriter) -> JsonResponse:
    phases = context.services.commands.registry[refunds.CREATE_REFUND]
    return await _expanded(context, await context.phased(phases, lambda uow: refunds.start_refund(uow, body)), body.expand)


@refunds_router.get("/{refund_id}", summary="Retrieve a refund", responses=documented(Refund))
async def retrieve_refund(
    refund_id: RefundId, context: RefundReader, expand: ExpandQuery[RefundExpansion] = None
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await expansion.expanded(uow, await refunds.retrieve_refund(uow, refund_id), expand or ()))


@refunds_router.get("", summary="List refunds, newest first", responses=documented(RefundList))
async def list_refunds(
    context: RefundReader,
    page: Annotated[PageRequest, Depends(page_request("re"))],
    payment_intent: Annotated[
        str | None, Query(max_length=64, json_schema_extra=id_schema("pi"), description="Only this intent's refunds")
    ] = None,
    charge: Annotated[
        str | None, Query(max_length=64, json_schema_extra=id_schema("ch"), description="Only this charge's refunds")
    ] = None,
    expand: ExpandQuery[RefundListExpansion] = None,
) -> JsonResponse:
    async with context.read() as uow:
        listed = await refunds.list_refunds(uow, page, payment_intent_id=payment_intent, charge_id=charge)
        return JsonResponse(await expansion.expanded_list(uow, listed, expand or ()))


disputes_router = APIRouter(prefix="/v1/disputes", tags=["disputes"])
DisputeId = Annotated[str, Path(max_length=64, json_schema_extra=id_schema("dp"), description="A dispute id, dp_...")]
DisputeReader = Annotated[RequestContext, Depends(Authorized("disputes:read"))]
DisputeWriter = Annotated[RequestContext, Depends(Authorized("disputes:write"))]


@disputes_router.get("/{dispute_id}", summary="Retrieve a dispute", responses=documented(Dispute))
async def retrieve_dispute(dispute_id: DisputeId, context: DisputeReader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await disputes.retrieve_dispute(uow, dispute_id))


@disputes_router.get("", summary="List disputes, newest first", responses=documented(DisputeList))
async def list_disputes(
    context: DisputeReader,
    page: Annotated[PageRequest, Depends(page_request("dp"))],
    payment_intent: Annotated[
        str | None, Query(max_length=64, json_schema_extra=id_schema("pi"), description="Only this intent's disputes")
    ] = None,
    charge: Annotated[
        str | None, Query(max_length=64, json_schema_extra=id_schema("ch"), description="Only this charge's disputes")
    ] = None,
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await disputes.list_disputes(uow, page, payment_intent_id=payment_intent, charge_id=charge))


@disputes_router.post(
    "/{dispute_id}",
    summary="Add evidence or metadata to a dispute; with submit: true, send the evidence to the issuer",
    responses=documented(Dispute, writes=True),
)
async def update_dispute(dispute_id: DisputeId, body: DisputeUpdate, context: DisputeWriter) -> JsonResponse:
    if body.submit:
        phases = context.services.commands.registry[disputes.SUBMIT_EVIDENCE]
        return await context.phased(phases, lambda uow: disputes.start_submit(uow, dispute_id, body))
    return await context.command(lambda uow: disputes.update_dispute(uow, dispute_id, body))


@disputes_router.post(
    "/{dispute_id}/close",
    summary="Accept a dispute: it is lost, and the disputed funds go back to the cardholder",
    responses=documented(Dispute, writes=True),
)
async def close_dispute(dispute_id: DisputeId, context: DisputeWriter) -> JsonResponse:
    phases = context.services.commands.registry[disputes.CLOSE]
    return await context.phased(phases, lambda uow: disputes.start_close(uow, dispute_id))


balance_router = APIRouter(prefix="/v1/balance", tags=["balance"])
BalanceReader = Annotated[RequestContext, Depends(Authorized("balance:read"))]


@balance_router.get(
    "",
    summary="The merchant's balance by currency, from the ledger",
    responses=documented(Balance),
    dependencies=[Depends(reject_unknown_query_params)],
)
async def retrieve_balance(context: BalanceReader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await books.retrieve_balance(uow))


balance_transactions_router = APIRouter(prefix="/v1/balance_transactions", tags=["balance"])
BalanceTransactionId = Annotated[
    str, Path(max_length=64, json_schema_extra=id_schema("txn"), description="A balance transaction id, txn_...")
]


@balance_transactions_router.get(
    "/{transaction_id}", summary="Retrieve a balance transaction", responses=documented(BalanceTransaction)
)
async def retrieve_balance_transaction(transaction_id: BalanceTransactionId, context: BalanceReader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await books.retrieve_balance_transaction(uow, transaction_id))


@balance_transactions_router.get(
    "", summary="List the movements of the balance, newest first", responses=documented(BalanceTransactionList)
)
async def list_balance_transactions(
    context: BalanceReader,
    page: Annotated[PageRequest, Depends(page_request("txn"))],
    type_: Annotated[
        Literal["charge", "refund", "adjustment"] | None, Query(alias="type", description="Only movements of this type")
    ] = None,
    source: Annotated[
        str | None, Query(max_length=64, description="Only the movements of this charge, refund or dispute")
    ] = None,
    currency: Annotated[Currency | None, Query(description="Only movements in this currency")] = None,
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await books.list_balance_transactions(uow, page, type_=type_, source=source, currency=currency))


reviews_router = APIRouter(prefix="/v1/reviews", tags=["reviews"])
ReviewId = Annotated[str, Path(max_length=64, json_schema_extra=id_schema("prv"), description="A review id, prv_...")]
ReviewReader = Annotated[RequestContext, Depends(Authorized("reviews:read"))]
ReviewWriter = Annotated[RequestContext, Depends(Authorized("reviews:write"))]


@reviews_router.get("/{review_id}", summary="Retrieve a review", responses=documented(Review))
async def retrieve_review(review_id: ReviewId, context: ReviewReader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await reviews.retrieve_review(uow, review_id))


@reviews_router.get("", summary="List reviews, newest first", responses=documented(ReviewList))
async def list_reviews(
    context: ReviewReader,
    page: Annotated[PageRequest, Depends(page_request("prv"))],
    open_: Annotated[bool | None, Query(alias="open", description="Only open (true) or closed (false) reviews")] = None,
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await reviews.list_reviews(uow, page, is_open=open_))


@reviews_router.post(
    "/{review_id}/approve",
    summary="Approve a review: a capture the risk engine held back proceeds",
    responses=documented(Review, writes=True),
)
async def approve_review(review_id: ReviewId, context: ReviewWriter) -> JsonResponse:
    async with context.read() as uow:
        step = await review_decisions.approval_step(uow, review_id)
    if step == review_decisions.Step.CAPTURE:
        phases = context.services.commands.registry[review_decisions.APPROVE]
        return await context.phased(phases, lambda uow: review_decisions.start_approve(uow, review_id))
    return await context.command(lambda uow: review_decisions.close(uow, review_id, review_decisions.APPROVED))


@reviews_router.post(
    "/{review_id}/reject",
    summary="Reject a review as fraud: the authorization is voided, or the payment refunded",
    responses=documented(Review, writes=True),
)
async def reject_review(review_id: ReviewId, context: ReviewWriter) -> JsonResponse:
    async with context.read() as uow:
        step = await review_decisions.rejection_step(uow, review_id)
    commands = context.services.commands.registry
    if step == review_decisions.Step.VOID:
        return await context.phased(
            commands[review_decisions.REJECT_BY_VOID], lambda uow: review_decisions.start_reject_by_void(uow, review_id)
        )
    if step == review_decisions.Step.REFUND:
        return await context.phased(
            commands[review_decisions.REJECT_BY_REFUND], lambda uow: review_decisions.start_reject_by_refund(uow, review_id)
        )
    return await context.command(lambda uow: review_decisions.close(uow, review_id, review_decisions.REJECTED))


# Connectors' notifications: no API key, each connector verifies its own signature.
connectors_router = APIRouter(prefix="/v1/connectors", tags=["connectors"])
ACCOUNT_NOTIFICATIONS_PATH = "/{connector}/notifications/{account}"
NOTIFICATION_PATHS = frozenset(
    {f"/v1/connectors/{SANDBOX_CONNECTOR}/notifications", f"/v1/connectors{ACCOUNT_NOTIFICATIONS_PATH}"}
)


@connectors_router.post(f"/{SANDBOX_CONNECTOR}/notifications", include_in_schema=False)
async def sandbox_notification(request: Request) -> JsonResponse:
    return await _received(request, request.app.state.services.connectors.sandbox, SANDBOX_CONNECTOR)


@connectors_router.post(ACCOUNT_NOTIFICATIONS_PATH, include_in_schema=False)
async def account_notification(request: Request, connector: str, account: str) -> JsonResponse:
    """A processor's notification for a merchant's connector account: the URL names the
    account, whose secret verifies it (docs/connectors.md, Notifications)."""
    verifier = await request.app.state.services.connectors.of_notification(connector, account)
    return await _received(request, verifier, account)


async def _received(request: Request, connector: Connector, sender: str) -> JsonResponse:
    services = request.app.state.services
    answer = await notifications.receive(
        services.database,
        connector,
        await request.body(),
        request.headers,
        sender=sender,
        velocity=services.velocity,
        request_id=request_id_var.get(),
    )
    return JsonResponse(answer)
