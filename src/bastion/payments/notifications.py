"""Notifications from connectors: verified by the connector, taken once by its own id, and
applied through the same rules as the answers Bastion asks for (docs/payments.md,
Notifications). A notification may come late, twice or before another: it settles only what is
still waiting for the connector's word, so that every order of them ends in the same state."""

from collections.abc import Mapping
from typing import Any

from bastion import risk
from bastion.payments import repository
from bastion.payments.charges import charge_row, intent_row
from bastion.payments.connectors import Answer, AttemptResult, Connector, DisputeState, Notification, Subject
from bastion.payments.disputes import apply_dispute
from bastion.payments.intents import attempt_state, awaiting_answer, record_attempt
from bastion.payments.settlements import apply_settlement
from bastion.platform.db import Actor, Database, Tenant, UnitOfWork
from bastion.platform.logging import get_logger

_log = get_logger("bastion.payments")
# What a payment's notification may say of an attempt still waiting; a void is Bastion's own
# cancel, which records it.
_SETTLING = frozenset({AttemptResult.AUTHORIZED, AttemptResult.CAPTURED, AttemptResult.DECLINED})


async def receive(
    database: Database,
    connector: Connector,
    body: bytes,
    headers: Mapping[str, str],
    *,
    sender: str,
    velocity: risk.Velocity,
    request_id: str | None,
) -> dict[str, Any]:
    """Verify, take once and apply a notification (an attempt's outcome counted in `velocity`);
    what became of it. `sender`: the connector account it came for (the sandbox acquirer's
    name for the sandbox's), which with the connector's own id makes it unique."""
    notification = connector.handle_notification(body, headers, now=int(database.clock.now().timestamp()))
    tenant = Tenant(notification.merchant_id, notification.livemode)
    actor = Actor(id=f"connector:{connector.name}", request_id=request_id)
    async with database.unit_of_work(tenant, actor) as uow:
        fresh = await repository.take_notification(
            uow.connection,
            uow.tenant,
            connector=sender,
            notification_id=notification.id,
            kind=notification.type,
            received_at=uow.now(),
        )
        if not fresh:
            return {"received": True, "result": "duplicate"}
        applied = await _apply(uow, connector.name, notification, velocity)
        if applied:
            await repository.notification_applied(uow.connection, connector=sender, notification_id=notification.id)
    _log.info(
        "notification_received",
        connector=connector.name,
        sender=sender,
        notification=notification.id,
        type=notification.type,
        applied=applied,
    )
    return {"received": True, "result": "applied" if applied else "ignored"}


async def _apply(uow: UnitOfWork, connector: str, notification: Notification, velocity: risk.Velocity) -> bool:
    """Whether the notification settled anything. A payment's settles its attempt if that is
    still waiting (an answer lost, a challenge open); a dispute's opens or moves its dispute; a
    settlement's books the payout; the rest confirm what Bastion's own commands did and
    recorded, and change nothing."""
    if notification.settlement is not None:
        return await apply_settlement(uow, connector, notification.settlement)
    if notification.dispute is not None:
        return await _apply_dispute(uow, notification.reference, notification.dispute)
    answer = notification.answer
    if notification.subject != Subject.PAYMENT or answer is None or answer.result not in _SETTLING:
        return False
    return await _apply_answer(uow, notification, answer, velocity)


async def _apply_answer(uow: UnitOfWork, notification: Notification, answer: Answer, velocity: risk.Velocity) -> bool:
    """A payment's outcome, recorded if its attempt still waits for it."""
    intent_id = await repository.awaiting_intent_id(uow.connection, uow.tenant, notification.reference)
    if intent_id is None:
        return False
    # Locked and checked again, the intent's row first, then the charge's, in the order every
    # command locks them: a sync may have settled it since.
    intent = await intent_row(uow, intent_id, for_update=True)
    charge = await charge_row(uow, notification.reference, for_update=True)
    if not awaiting_answer(intent, charge):
        return False
    if (notification.amount, notification.currency) != (charge["amount"], charge["currency"]):
        # The integrity check of every answer: another amount or currency is not applied.
        _log.warning("notification_quarantined", notification=notification.id, charge=charge["id"])
        return False
    await record_attempt(uow, attempt_state(intent, charge), answer.to_outcome(), velocity)
    return True


async def _apply_dispute(uow: UnitOfWork, reference: str, told: DisputeState) -> bool:
    """`reference`: the charge's id, or the processor's id of the payment where the processor's
    dispute carries nothing of Bastion's (Stripe's names its PaymentIntent)."""
    charge_id: str | None = reference
    if await repository.charge_intent_id(uow.connection, uow.tenant, reference) is None:
        charge_id = await repository.charge_of_connector_reference(uow.connection, uow.tenant, reference)
    if charge_id is None:
        return False
    return await apply_dispute(uow, charge_id, told)
