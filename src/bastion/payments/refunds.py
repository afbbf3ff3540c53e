"""Refunds: all or part of a captured charge returned to the card, several per charge, never
more than was captured. A command in phases (ADR 10, ADR 17): the first transaction reserves the
amount on the charge under its row lock, so that concurrent refunds cannot pass the limit
together; the acquirer is called; the outcome is recorded with its ledger posting, or the
reservation returned."""

from collections.abc import Sequence

from bastion import audit, events, risk
from bastion.connectors import KINDS
from bastion.kernel.clock import unix_seconds
from bastion.kernel.errors import ProcessorUnavailable, ResourceMissing, invariant
from bastion.kernel.ids import is_id, new_id
from bastion.kernel.metadata import merge_metadata
from bastion.kernel.money import Money
from bastion.payments import books, repository
from bastion.payments.charges import charge_resource, charge_row, intent_row, write_charge
from bastion.payments.connectors import Answer, AttemptResult
from bastion.payments.directory import ConnectorDirectory
from bastion.payments.domain import IntentStatus, refund_amount
from bastion.payments.errors import ChargeDisputed, ConnectorCapabilityUnsupported, PaymentIntentUnexpectedState
from bastion.payments.events import CHARGE_REFUNDED, REFUND_CREATED, REFUND_UPDATED
from bastion.payments.resources import Refund, RefundList
from bastion.payments.schemas import RefundCreate
from bastion.platform.db import AnyRow, Tenant, UnitOfWork
from bastion.platform.http.errors import ParameterMissing
from bastion.platform.idempotency import RESUMED, Outcome, Phases, State
from bastion.platform.pagination import PageRequest, check_cursors

CREATE_REFUND = "refund.create"


def refund_resource(row: AnyRow) -> Refund:
    return Refund(
        id=row["id"],
        object="refund",
        amount=row["amount"],
        currency=row["currency"],
        charge=row["charge_id"],
        payment_intent=row["payment_intent_id"],
        status=row["status"],
        reason=row["reason"],
        failure_reason=row["failure_reason"],
        metadata=row["metadata"],
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )


async def _refunded_charge(uow: UnitOfWork, request: RefundCreate) -> AnyRow:
    """The charge the request refunds, locked: named, or the latest of the named intent."""
    if request.charge is None and request.payment_intent is None:
        raise ParameterMissing("Name what to refund: payment_intent or charge.", param="payment_intent")
    intent_charge = None
    if request.payment_intent is not None:
        intent = await intent_row(uow, request.payment_intent, param="payment_intent")
        if intent["status"] != IntentStatus.SUCCEEDED:
            raise PaymentIntentUnexpectedState(
                f"This PaymentIntent has a status of {intent['status']}: only a succeeded one has funds to refund.",
                param="payment_intent",
            )
        intent_charge = intent["latest_charge_id"]
    if request.charge is not None and intent_charge is not None and request.charge != intent_charge:
        raise PaymentIntentUnexpectedState("The charge is not the PaymentIntent's.", param="charge")
    charge_id = request.charge or intent_charge
    invariant(charge_id is not None, "a succeeded PaymentIntent has a charge")
    charge = await charge_row(uow, str(charge_id), for_update=True, param="charge")
    if not charge["captured"]:
        raise PaymentIntentUnexpectedState("This charge was not captured: there is nothing to refund.", param="charge")
    if charge["disputed"]:
        # The disputed funds are already set aside for the cardholder: a refund would pay them twice.
        raise ChargeDisputed("This charge is disputed: answer the dispute instead of refunding it.", param="charge")
    return charge


def _check_connector_refunds(charge: AnyRow, amount: int) -> None:
    """A part of a charge, or a second refund of it, only where its connector does that."""
    kind = KINDS[charge["connector"]]
    if charge["amount_refunded"] > 0 and not kind.capabilities.multiple_refunds:
        raise ConnectorCapabilityUnsupported(
            f"The {kind.display_name} connector refunds a charge once: this one is refunded already.", param="charge"
        )
    if amount < charge["amount_captured"] and not kind.capabilities.partial_refunds:
        raise ConnectorCapabilityUnsupported(
            f"The {kind.display_name} connector refunds the whole charge only: leave amount out.", param="amount"
        )


async def start_refund(uow: UnitOfWork, request: RefundCreate) -> State:
    charge = await _refunded_charge(uow, request)
    amount = refund_amount(request.amount, charge["amount_captured"], charge["amount_refunded"])
    _check_connector_refunds(charge, amount)
    refund = await repository.insert_refund(
        uow.connection,
        uow.tenant,
        {
            "id": new_id("re"),
            "charge_id": charge["id"],
            "payment_intent_id": charge["payment_intent_id"],
            "amount": amount,
            "currency": charge["currency"],
            "reason": request.reason,
            "metadata": merge_metadata({}, request.metadata),
            "created_at": uow.now(),
        },
    )
    # Reserved now, under the charge's lock: a concurrent refund sees it.
    await write_charge(uow, charge, {"amount_refunded": charge["amount_refunded"] + amount}, event_types=[])
    resource = refund_resource(refund)
    audit.record(uow, action_type="refund.create", resource_type="refund", resource_id=refund["id"], before=None, after=resource)
    events.emit(uow, REFUND_CREATED, resource)
    return {
        "refund": refund["id"],
        "charge": charge["id"],
        "connector_account": charge["connector_account_id"],
        "reference": charge["connector_reference"],
        "amount": amount,
    }


async def _refund(uow: UnitOfWork, refund_id: str, *, for_update: bool = False, param: str = "id") -> AnyRow:
    row = (
        await repository.get_refund(uow.connection, uow.tenant, refund_id, for_update=for_update)
        if is_id(refund_id, "re")
        else None
    )
    if row is None:
        raise ResourceMissing(f"No such refund: '{refund_id}'", param=param)
    return row


async def _settle(uow: UnitOfWork, state: State, status: str, failure_reason: str | None) -> Refund:
    refund = await _refund(uow, state["refund"], for_update=True)
    charge = await charge_row(uow, state["charge"], for_update=True)
    if status == "succeeded":
        await books.refund(uow, refund["id"], Money(refund["amount"], refund["currency"]))
        # The charge's amount_refunded was reserved when the refund started: only the event is new.
        events.emit(uow, CHARGE_REFUNDED, charge_resource(charge))
        if refund["reason"] == "fraudulent":
            await risk.label_fraud(uow, charge["id"])
    else:
        # The reservation goes back: the charge may be refunded again.
        await write_charge(uow, charge, {"amount_refunded": charge["amount_refunded"] - refund["amount"]}, event_types=[])
    row = await repository.update_refund(
        uow.connection, uow.tenant, refund["id"], status=status, failure_reason=failure_reason, moment=uow.now()
    )
    resource = refund_resource(row)
    audit.record(
        uow,
        action_type="refund.update",
        resource_type="refund",
        resource_id=row["id"],
        before=refund_resource(refund),
        after=resource,
    )
    events.emit(uow, REFUND_UPDATED, resource)
    return resource


def refund_phases(connectors: ConnectorDirectory) -> Phases:
    async def send(tenant: Tenant, state: State) -> Outcome:
        connector = await connectors.of(tenant, state.get("connector_account"))
        if state.get(RESUMED):
            # The earlier run may have sent it: what the processor holds first, where it can tell.
            told = await connector.sync_refund(tenant, state["refund"], state["reference"], state["amount"])
            if told.result == AttemptResult.REFUNDED:
                return told.to_outcome()
        answer = await connector.refund(tenant, state["refund"], state["reference"], state["amount"])
        return answer.to_outcome()

    async def record(uow: UnitOfWork, state: State, outcome: Outcome) -> Refund:
        answer = Answer.from_outcome(outcome)
        if answer.result == AttemptResult.UNKNOWN:
            raise ProcessorUnavailable("The acquirer's answer to the refund is not known; it will be asked again.")
        if answer.result == AttemptResult.REFUNDED:
            return await _settle(uow, state, "succeeded", None)
        return await _settle(uow, state, "failed", answer.message or "The acquirer refused the refund.")

    async def undo(uow: UnitOfWork, state: State) -> None:
        refund = await _refund(uow, state["refund"])
        if refund["status"] == "pending":
            await _settle(uow, state, "failed", "The refund could not be completed.")

    return Phases(name=CREATE_REFUND, call=send, finish=record, undo=undo)


async def retrieve_refund(uow: UnitOfWork, refund_id: str) -> Refund:
    return refund_resource(await _refund(uow, refund_id))


def refund_list(rows: Sequence[AnyRow], has_more: bool) -> RefundList:
    return RefundList(object="list", url="/v1/refunds", data=[refund_resource(row) for row in rows], has_more=has_more)


async def list_refunds(
    uow: UnitOfWork, request: PageRequest, *, payment_intent_id: str | None, charge_id: str | None
) -> RefundList:
    if charge_id is not None:
        await charge_row(uow, charge_id, param="charge")
    if payment_intent_id is not None:
        await intent_row(uow, payment_intent_id, param="payment_intent")
    await check_cursors(
        request, prefix="re", noun="refund", exists=lambda cursor: repository.refund_exists(uow.connection, uow.tenant, cursor)
    )
    page = await repository.page_refunds(
        uow.connection, uow.tenant, request, payment_intent_id=payment_intent_id, charge_id=charge_id
    )
    return refund_list(page.rows, page.has_more)
