"""A review's outcome, as the merchant decides it: approve (the capture proceeds, when the risk
engine held back an automatic capture) or reject (the authorization is voided, or the payment
refunded as fraud). What calls the connector is a command in phases that closes the review in
its finish; what does not is one transaction (docs/risk.md, Reviews)."""

import enum

from bastion.payments import intents, refunds, reviews
from bastion.payments.charges import intent_row
from bastion.payments.directory import ConnectorDirectory
from bastion.payments.domain import IntentStatus
from bastion.payments.resources import Review
from bastion.payments.schemas import PaymentIntentCapture, RefundCreate
from bastion.platform.db import UnitOfWork
from bastion.platform.idempotency import Phases, State

APPROVE = "review.approve"
REJECT_BY_VOID = "review.reject_by_void"
REJECT_BY_REFUND = "review.reject_by_refund"
APPROVED = "approved"
REJECTED = "refunded_as_fraud"


class Step(enum.StrEnum):
    """What deciding a review takes beyond closing it."""

    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"
    NONE = "none"


async def approval_step(uow: UnitOfWork, review_id: str) -> Step:
    """An approval captures what the risk engine held back from an automatic capture; a manual
    capture stays the merchant's to make."""
    review = await reviews.review_row(uow, review_id, must_be_open=True)
    intent = await intent_row(uow, review["payment_intent_id"])
    held_back = intent["capture_method"] == "automatic" and intent["status"] == IntentStatus.REQUIRES_CAPTURE
    return Step.CAPTURE if held_back else Step.NONE


async def rejection_step(uow: UnitOfWork, review_id: str) -> Step:
    """A rejection voids an authorization, refunds a payment captured meanwhile, or only closes."""
    review = await reviews.review_row(uow, review_id, must_be_open=True)
    status = (await intent_row(uow, review["payment_intent_id"]))["status"]
    return {IntentStatus.REQUIRES_CAPTURE: Step.VOID, IntentStatus.SUCCEEDED: Step.REFUND}.get(IntentStatus(status), Step.NONE)


async def start_approve(uow: UnitOfWork, review_id: str) -> State:
    review = await reviews.review_row(uow, review_id, for_update=True, must_be_open=True)
    state = await intents.start_capture(uow, review["payment_intent_id"], PaymentIntentCapture())
    return state | {"review": review_id}


async def start_reject_by_void(uow: UnitOfWork, review_id: str) -> State:
    review = await reviews.review_row(uow, review_id, for_update=True, must_be_open=True)
    state = await intents.start_cancel(uow, review["payment_intent_id"], "fraudulent")
    return state | {"review": review_id}


async def start_reject_by_refund(uow: UnitOfWork, review_id: str) -> State:
    review = await reviews.review_row(uow, review_id, for_update=True, must_be_open=True)
    request = RefundCreate(payment_intent=review["payment_intent_id"], reason="fraudulent")
    state = await refunds.start_refund(uow, request)
    return state | {"review": review_id}


async def close(uow: UnitOfWork, review_id: str, reason: str) -> Review:
    """A review decided with nothing more to do than close it."""
    return await reviews.close_review(uow, review_id, reason)


async def _approved(uow: UnitOfWork, state: State) -> Review:
    return await reviews.close_review(uow, state["review"], APPROVED)


async def _voided(uow: UnitOfWork, state: State) -> Review:
    return await reviews.close_review(uow, state["review"], REJECTED)


async def _refunded(uow: UnitOfWork, state: State) -> Review:
    """Closed if the refund went through; a refund the acquirer refused leaves the review open."""
    if (await refunds.retrieve_refund(uow, state["refund"]))["status"] != "succeeded":
        return await reviews.retrieve_review(uow, state["review"])
    return await reviews.close_review(uow, state["review"], REJECTED)


def review_phases(connectors: ConnectorDirectory) -> list[Phases]:
    """The commands of a review decided with a call to the connector, each closing it in its finish."""
    return [
        intents.capture_phases(connectors).then(APPROVE, _approved),
        intents.cancel_phases(connectors).then(REJECT_BY_VOID, _voided),
        refunds.refund_phases(connectors).then(REJECT_BY_REFUND, _refunded),
    ]
