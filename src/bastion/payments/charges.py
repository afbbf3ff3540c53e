"""Charges: one per attempt to authorize a PaymentIntent, read through the API; written by
the intents' commands (`intents.py`)."""

from collections.abc import Sequence
from typing import Any

from bastion import audit, events
from bastion.kernel.clock import unix_seconds
from bastion.kernel.errors import ResourceMissing
from bastion.kernel.ids import is_id
from bastion.payments import repository
from bastion.payments.resources import Charge, ChargeList, ChargeOutcome
from bastion.platform.db import AnyRow, UnitOfWork
from bastion.platform.pagination import PageRequest, check_cursors


def charge_resource(row: AnyRow) -> Charge:
    recorded = row["outcome"]
    outcome = (
        None
        if recorded is None
        else ChargeOutcome(
            network_status=recorded["network_status"],
            type=recorded["type"],
            reason=recorded["reason"],
            seller_message=recorded["seller_message"],
            risk_level=recorded["risk_level"],
            # Charges made before the risk engine have neither in their outcome.
            risk_score=recorded.get("risk_score"),
            rule=recorded.get("rule"),
        )
    )
    return Charge(
        id=row["id"],
        object="charge",
        amount=row["amount"],
        amount_captured=row["amount_captured"],
        amount_refunded=row["amount_refunded"],
        currency=row["currency"],
        status=row["status"],
        paid=row["status"] == "succeeded",
        captured=row["captured"],
        refunded=row["captured"] and row["amount_refunded"] == row["amount_captured"],
        disputed=row["disputed"],
        payment_intent=row["payment_intent_id"],
        payment_method=row["payment_method_id"],
        outcome=outcome,
        failure_code=row["failure_code"],
        failure_message=row["failure_message"],
        connector=row["connector"],
        connector_account=row["connector_account_id"],
        routing=row["routing"],
        connector_reference=row["connector_reference"],
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )


def charge_values(row: AnyRow) -> dict[str, Any]:
    """The row's changeable columns, for a use case to change and write back."""
    return {column: row[column] for column in repository.CHARGE_COLUMNS}


async def write_charge(uow: UnitOfWork, before: AnyRow, changes: dict[str, Any], *, event_types: Sequence[str]) -> None:
    """The charge with `changes`, audited, and announced by `event_types`."""
    values = charge_values(before) | changes | {"updated_at": uow.now()}
    row = await repository.update_charge(uow.connection, uow.tenant, before["id"], values)
    resource = charge_resource(row)
    audit.record(
        uow,
        action_type="charge.update",
        resource_type="charge",
        resource_id=row["id"],
        before=charge_resource(before),
        after=resource,
    )
    for event_type in event_types:
        events.emit(uow, event_type, resource)


async def charge_row(uow: UnitOfWork, charge_id: str, *, for_update: bool = False, param: str = "id") -> AnyRow:
    row = (
        await repository.get_charge(uow.connection, uow.tenant, charge_id, for_update=for_update)
        if is_id(charge_id, "ch")
        else None
    )
    if row is None:
        raise ResourceMissing(f"No such charge: '{charge_id}'", param=param)
    return row


async def intent_row(uow: UnitOfWork, intent_id: str, *, for_update: bool = False, param: str = "id") -> AnyRow:
    """The tenant's PaymentIntent, or `resource_missing` naming `param`. Here, beside the
    charge's, because the intents' module imports this one."""
    row = (
        await repository.get_intent(uow.connection, uow.tenant, intent_id, for_update=for_update)
        if is_id(intent_id, "pi")
        else None
    )
    if row is None:
        raise ResourceMissing(f"No such payment intent: '{intent_id}'", param=param)
    return row


async def retrieve_charge(uow: UnitOfWork, charge_id: str) -> Charge:
    return charge_resource(await charge_row(uow, charge_id))


def charge_list(rows: Sequence[AnyRow], has_more: bool) -> ChargeList:
    return ChargeList(object="list", url="/v1/charges", data=[charge_resource(row) for row in rows], has_more=has_more)


async def list_charges(uow: UnitOfWork, request: PageRequest, payment_intent_id: str | None) -> ChargeList:
    if payment_intent_id is not None:
        await intent_row(uow, payment_intent_id, param="payment_intent")
    await check_cursors(
        request, prefix="ch", noun="charge", exists=lambda cursor: repository.charge_exists(uow.connection, uow.tenant, cursor)
    )
    page = await repository.page_charges(uow.connection, uow.tenant, request, payment_intent_id)
    return charge_list(page.rows, page.has_more)
