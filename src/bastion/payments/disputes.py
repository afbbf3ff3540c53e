"""Disputes: opened by the connector's notification when a cardholder disputes a captured
charge, moved on by the merchant's evidence or acceptance (commands in phases: they call the
connector) and by the connector's notifications of the issuer's decision. Every change comes
through `apply_dispute`, which only moves a dispute forward, so that answers and notifications
in any order, or twice, end in the same state (docs/payments.md, Disputes)."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bastion import audit, events, risk
from bastion.kernel.clock import unix_seconds
from bastion.kernel.errors import ResourceMissing
from bastion.kernel.ids import is_id, new_id
from bastion.kernel.metadata import merge_metadata
from bastion.kernel.money import Money
from bastion.payments import books, repository
from bastion.payments.charges import charge_row, intent_row, write_charge
from bastion.payments.connectors import DisputeState
from bastion.payments.directory import ConnectorDirectory
from bastion.payments.domain import DISPUTE_CLOSED, DISPUTE_OPEN, DisputeStatus, dispute_fee, dispute_moves
from bastion.payments.errors import DisputeUnexpectedState
from bastion.payments.events import CHARGE_DISPUTE_CLOSED, CHARGE_DISPUTE_CREATED, CHARGE_DISPUTE_UPDATED
from bastion.payments.resources import Dispute, DisputeList
from bastion.payments.schemas import DisputeUpdate
from bastion.platform.db import AnyRow, Tenant, UnitOfWork
from bastion.platform.idempotency import Outcome, Phases, State
from bastion.platform.logging import get_logger
from bastion.platform.pagination import PageRequest, check_cursors

SUBMIT_EVIDENCE = "dispute.submit"
CLOSE = "dispute.close"
_log = get_logger("bastion.payments")


def dispute_resource(row: AnyRow, now: datetime) -> Dispute:
    status = DisputeStatus(row["status"])
    return Dispute(
        id=row["id"],
        object="dispute",
        amount=row["amount"],
        currency=row["currency"],
        charge=row["charge_id"],
        payment_intent=row["payment_intent_id"],
        status=status.value,
        reason=row["reason"],
        evidence=row["evidence"],
        evidence_details={
            "due_by": unix_seconds(row["evidence_due_by"]),
            "has_evidence": bool(row["evidence"]),
            "past_due": status in DISPUTE_OPEN and now > row["evidence_due_by"],
            "submission_count": row["submission_count"],
        },
        is_charge_refundable=False,
        metadata=row["metadata"],
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )


async def _write(uow: UnitOfWork, before: AnyRow, changes: dict[str, Any], *, action: str, event_types: Sequence[str]) -> Dispute:
    values = {column: before[column] for column in repository.DISPUTE_COLUMNS} | changes | {"updated_at": uow.now()}
    row = await repository.update_dispute(uow.connection, uow.tenant, before["id"], values)
    resource = dispute_resource(row, uow.now())
    audit.record(
        uow,
        action_type=action,
        resource_type="dispute",
        resource_id=row["id"],
        before=dispute_resource(before, uow.now()),
        after=resource,
    )
    for event_type in event_types:
        events.emit(uow, event_type, resource)
    return resource


async def apply_dispute(uow: UnitOfWork, charge_id: str, told: DisputeState) -> bool:
    """What the connector says of a dispute of `charge_id`, recorded: the dispute opened (its
    funds held and its fee taken) if Bastion did not know it, then moved forward to the told
    status if that is further along (closed: the hold returned if won, posted if lost). Whether
    anything changed."""
    # The charge's row first, as a refund locks it: two notifications of one new dispute open it once.
    charge = await charge_row(uow, charge_id, for_update=True)
    dispute = await repository.dispute_by_reference(uow.connection, uow.tenant, told.reference)
    opened = dispute is None
    if dispute is None:
        if not charge["captured"] or told.currency != charge["currency"] or not 0 < told.amount <= charge["amount_captured"]:
            # The integrity check of every answer: a dispute of more than was captured is not applied.
            _log.warning("dispute_quarantined", charge=charge_id, dispute=told.reference)
            return False
        dispute = await _open(uow, charge, told)
    new = DisputeStatus(told.status)
    if not dispute_moves(DisputeStatus(dispute["status"]), new):
        return opened
    if new in DISPUTE_CLOSED:
        disputed = Money(dispute["amount"], dispute["currency"])
        await books.close_dispute(uow, dispute["id"], dispute["hold_entry_id"], disputed, won=new == DisputeStatus.WON)
        await _write(uow, dispute, {"status": new}, action="dispute.close", event_types=[CHARGE_DISPUTE_CLOSED])
    else:
        await _write(uow, dispute, {"status": new}, action="dispute.update", event_types=[CHARGE_DISPUTE_UPDATED])
    return True


async def _open(uow: UnitOfWork, charge: AnyRow, told: DisputeState) -> AnyRow:
    dispute_id = new_id("dp")
    disputed = Money(told.amount, told.currency)
    fee = dispute_fee(told.currency)
    hold = await books.hold_dispute(uow, dispute_id, disputed, fee)
    opened = (
        DisputeStatus.WARNING_NEEDS_RESPONSE
        if told.status == DisputeStatus.WARNING_NEEDS_RESPONSE
        else DisputeStatus.NEEDS_RESPONSE
    )
    row = await repository.insert_dispute(
        uow.connection,
        uow.tenant,
        {
            "id": dispute_id,
            "charge_id": charge["id"],
            "payment_intent_id": charge["payment_intent_id"],
            "amount": told.amount,
            "currency": told.currency,
            "status": opened,
            "reason": told.reason,
            "evidence_due_by": datetime.fromtimestamp(told.evidence_due_by, UTC),
            "connector_reference": told.reference,
            "hold_entry_id": hold,
            "fee": fee.amount_minor,
            "created_at": uow.now(),
        },
    )
    await write_charge(uow, charge, {"disputed": True}, event_types=[])
    if told.reason == "fraudulent":
        await risk.label_fraud(uow, charge["id"])
    resource = dispute_resource(row, uow.now())
    audit.record(uow, action_type="dispute.create", resource_type="dispute", resource_id=row["id"], before=None, after=resource)
    events.emit(uow, CHARGE_DISPUTE_CREATED, resource)
    return row


async def _dispute(uow: UnitOfWork, dispute_id: str, *, for_update: bool = False) -> AnyRow:
    row = (
        await repository.get_dispute(uow.connection, uow.tenant, dispute_id, for_update=for_update)
        if is_id(dispute_id, "dp")
        else None
    )
    if row is None:
        raise ResourceMissing(f"No such dispute: '{dispute_id}'", param="id")
    return row


def _check_open(row: AnyRow, action: str) -> None:
    if DisputeStatus(row["status"]) not in DISPUTE_OPEN:
        raise DisputeUnexpectedState(
            f"You cannot {action} this dispute because it has a status of {row['status']}: only a dispute that needs a "
            "response can be.",
            param="id",
        )


async def retrieve_dispute(uow: UnitOfWork, dispute_id: str) -> Dispute:
    return dispute_resource(await _dispute(uow, dispute_id), uow.now())


async def list_disputes(
    uow: UnitOfWork, request: PageRequest, *, payment_intent_id: str | None, charge_id: str | None
) -> DisputeList:
    if charge_id is not None:
        await charge_row(uow, charge_id, param="charge")
    if payment_intent_id is not None:
        await intent_row(uow, payment_intent_id, param="payment_intent")
    await check_cursors(
        request, prefix="dp", noun="dispute", exists=lambda cursor: repository.dispute_exists(uow.connection, uow.tenant, cursor)
    )
    page = await repository.page_disputes(
        uow.connection, uow.tenant, request, payment_intent_id=payment_intent_id, charge_id=charge_id
    )
    now = uow.now()
    return DisputeList(
        object="list", url="/v1/disputes", data=[dispute_resource(row, now) for row in page.rows], has_more=page.has_more
    )


async def update_dispute(uow: UnitOfWork, dispute_id: str, request: DisputeUpdate) -> Dispute:
    """Evidence and metadata kept, not submitted (`submit: true` is `start_submit`)."""
    row = await _dispute(uow, dispute_id, for_update=True)
    changes: dict[str, Any] = {"metadata": merge_metadata(row["metadata"], request.metadata)}
    if request.evidence is not None:
        _check_open(row, "update the evidence of")
        changes["evidence"] = _evidence(row, request)
    return await _write(uow, row, changes, action="dispute.update", event_types=[CHARGE_DISPUTE_UPDATED])


def _evidence(row: AnyRow, request: DisputeUpdate) -> dict[str, str]:
    given = {} if request.evidence is None else request.evidence.model_dump(exclude_none=True)
    evidence: dict[str, str] = row["evidence"] | given
    return evidence


async def start_submit(uow: UnitOfWork, dispute_id: str, request: DisputeUpdate) -> State:
    row = await _dispute(uow, dispute_id, for_update=True)
    _check_open(row, "submit evidence for")
    evidence = _evidence(row, request)
    changes = {
        "evidence": evidence,
        "metadata": merge_metadata(row["metadata"], request.metadata),
        "submission_count": row["submission_count"] + 1,
    }
    await _write(uow, row, changes, action="dispute.evidence", event_types=[])
    return {
        "dispute": row["id"],
        "charge": row["charge_id"],
        "connector_account": (await charge_row(uow, row["charge_id"]))["connector_account_id"],
        "reference": row["connector_reference"],
        "evidence": evidence,
        "submission": changes["submission_count"],
        # What a refused submission puts back.
        "before": {"evidence": row["evidence"], "submission_count": row["submission_count"]},
    }


async def start_close(uow: UnitOfWork, dispute_id: str) -> State:
    row = await _dispute(uow, dispute_id, for_update=True)
    _check_open(row, "close")
    return {
        "dispute": row["id"],
        "charge": row["charge_id"],
        "connector_account": (await charge_row(uow, row["charge_id"]))["connector_account_id"],
        "reference": row["connector_reference"],
    }


async def _record(uow: UnitOfWork, state: State, outcome: Outcome) -> Dispute:
    told = DisputeState(**outcome)
    await apply_dispute(uow, state["charge"], told)
    return dispute_resource(await _dispute(uow, state["dispute"]), uow.now())


def _as_outcome(told: DisputeState) -> Outcome:
    return {
        "reference": told.reference,
        "status": told.status,
        "amount": told.amount,
        "currency": told.currency,
        "reason": told.reason,
        "evidence_due_by": told.evidence_due_by,
    }


def submit_phases(connectors: ConnectorDirectory) -> Phases:
    async def submit(tenant: Tenant, state: State) -> Outcome:
        connector = await connectors.of(tenant, state.get("connector_account"))
        told = await connector.respond_to_dispute(
            tenant,
            state["reference"],
            key=f"{state['dispute']}:evidence:{state['submission']}",
            evidence=state["evidence"],
            submit=True,
        )
        return _as_outcome(told)

    async def undo(uow: UnitOfWork, state: State) -> None:
        row = await _dispute(uow, state["dispute"], for_update=True)
        await _write(uow, row, state["before"], action="dispute.evidence_refused", event_types=[])

    return Phases(name=SUBMIT_EVIDENCE, call=submit, finish=_record, undo=undo)


def close_phases(connectors: ConnectorDirectory) -> Phases:
    async def accept(tenant: Tenant, state: State) -> Outcome:
        connector = await connectors.of(tenant, state.get("connector_account"))
        return _as_outcome(await connector.accept_dispute(tenant, state["reference"], key=f"{state['dispute']}:accept"))

    return Phases(name=CLOSE, call=accept, finish=_record)
