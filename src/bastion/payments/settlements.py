"""Settlements: the connector pays out what it owes a merchant, and says which captures,
refunds and lost disputes the payout covers (docs/payments.md, Settlement). Bastion records each
once, checks every line against its own objects, moves the captures' net from the pending to
the available balance, and books the cash the acquirer paid (or took back) in one ledger entry."""

from datetime import date

from bastion import audit
from bastion.kernel.clock import unix_seconds
from bastion.kernel.ids import new_id
from bastion.kernel.money import Money
from bastion.payments import books, repository
from bastion.payments.connectors import SettlementLine, SettlementState
from bastion.payments.domain import DisputeStatus
from bastion.payments.errors import NotificationEarly
from bastion.platform.db import AnyRow, UnitOfWork
from bastion.platform.logging import get_logger

_log = get_logger("bastion.payments")


def _early(line: SettlementLine) -> NotificationEarly:
    return NotificationEarly(
        f"The settlement names the {line.kind} {line.reference}, which Bastion has not recorded as settled by the "
        "acquirer yet; send the notification again later.",
        param="data.lines",
    )


async def _items(uow: UnitOfWork, told: SettlementState) -> tuple[list[AnyRow], list[AnyRow], list[AnyRow]] | None:
    """The charges, refunds and disputes the settlement's lines name, locked and checked; None if
    a line disagrees with Bastion's own record (quarantined). A line Bastion has not caught up
    with yet (its answer or notification still on its way) is `NotificationEarly`: the connector
    sends the settlement again later."""
    charges, refunds, disputes = [], [], []
    for line in sorted(told.lines, key=lambda line: (line.kind != "capture", line.reference)):
        if line.kind == "capture":
            row = await repository.get_charge(uow.connection, uow.tenant, line.reference, for_update=True)
            ready = row is not None and row["captured"]
            amount = None if row is None else row["amount_captured"]
            charges.append(row)
        elif line.kind == "refund":
            row = await repository.get_refund(uow.connection, uow.tenant, line.reference, for_update=True)
            ready = row is not None and row["status"] == "succeeded"
            amount = None if row is None else row["amount"]
            refunds.append(row)
        else:
            row = await repository.dispute_by_reference(uow.connection, uow.tenant, line.connector_id)
            ready = row is not None and row["status"] == DisputeStatus.LOST
            amount = None if row is None else row["amount"]
            disputes.append(row)
        if not ready or row is None:
            raise _early(line)
        if amount != line.amount or row["currency"] != told.currency or row["settlement_id"] is not None:
            _log.warning("settlement_quarantined", settlement=told.reference, line=line.reference)
            return None
    return charges, refunds, disputes


async def apply_settlement(uow: UnitOfWork, connector: str, told: SettlementState) -> bool:
    """The settlement recorded and booked, once; whether it was (False: known already, or quarantined)."""
    if await repository.settlement_by_reference(uow.connection, uow.tenant, connector, told.reference) is not None:
        return False
    items = await _items(uow, told)
    if items is None:
        return False
    charges, refunds, disputes = items
    settlement_id = new_id("stl")
    released = sum(charge["amount_captured"] - charge["fee"] for charge in charges)
    entry_id = await books.settle(
        uow,
        settlement_id,
        net=Money(told.net, told.currency),
        released=Money(released, told.currency),
        charges=[charge["id"] for charge in charges],
    )
    row = await repository.insert_settlement(
        uow.connection,
        uow.tenant,
        {
            "id": settlement_id,
            "connector": connector,
            "connector_reference": told.reference,
            "currency": told.currency,
            "settled_on": date.fromisoformat(told.settled_on),
            "net": told.net,
            "released": released,
            "entry_id": entry_id,
            "created_at": uow.now(),
        },
    )
    await repository.mark_settled(
        uow.connection,
        uow.tenant,
        settlement_id,
        charges=[charge["id"] for charge in charges],
        refunds=[refund["id"] for refund in refunds],
        disputes=[dispute["id"] for dispute in disputes],
    )
    after = {
        "id": settlement_id,
        "connector_reference": told.reference,
        "currency": told.currency,
        "settled_on": told.settled_on,
        "net": told.net,
        "released": released,
        "items": len(told.lines),
        "created": unix_seconds(row["created_at"]),
    }
    audit.record(
        uow, action_type="settlement.create", resource_type="settlement", resource_id=settlement_id, before=None, after=after
    )
    return True
