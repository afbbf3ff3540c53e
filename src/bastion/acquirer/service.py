"""What the sandbox acquirer does: authorize (and capture at once, if asked), capture, void and
refund, each once per Idempotency-Key, recorded in its own schema."""

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bastion.acquirer import repository
from bastion.acquirer.domain import Fate, PaymentStatus, check_capture, check_refund, check_void, decline_for, fate_of
from bastion.acquirer.schemas import Capture, PaymentCreate, RefundCreate
from bastion.kernel.errors import IdempotencyError, ResourceMissing
from bastion.kernel.ids import new_id
from bastion.platform.db import AnyRow, Connection, Database
from bastion.platform.settings import AcquirerChaos

Answer = dict[str, Any]
Operation = Callable[[Connection, datetime], Awaitable[Answer]]


# Keys whose attempts chaos counts, at most: the oldest are forgotten beyond.
CHAOS_KEYS_MAX = 100_000


@dataclass(frozen=True, slots=True)
class Acquirer:
    database: Database
    # The secret Bastion's connector presents (`Authorization: Bearer ...`).
    api_key: str
    chaos: AcquirerChaos | None = None
    # Requests seen per Idempotency-Key, for chaos: each retry is another attempt.
    attempts: dict[str, int] = field(default_factory=dict)

    def fate(self, key: str) -> Fate | None:
        if self.chaos is None:
            return None
        attempt = self.attempts.get(key, 0)
        if attempt == 0 and len(self.attempts) >= CHAOS_KEYS_MAX:
            del self.attempts[next(iter(self.attempts))]
        self.attempts[key] = attempt + 1
        return fate_of(self.chaos, key, attempt)


def payment_resource(row: AnyRow) -> Answer:
    return {
        "id": row["id"],
        "object": "payment",
        "merchant": row["merchant"],
        "reference": row["reference"],
        "amount": row["amount"],
        "currency": row["currency"],
        "status": row["status"],
        "decline_code": row["decline_code"],
        "decline_message": row["decline_message"],
        "card_last4": row["card_last4"],
        "amount_captured": row["amount_captured"],
        "amount_refunded": row["amount_refunded"],
        "created": int(row["created_at"].timestamp()),
    }


def refund_resource(row: AnyRow) -> Answer:
    return {
        "id": row["id"],
        "object": "refund",
        "payment": row["payment_id"],
        "reference": row["reference"],
        "amount": row["amount"],
        "status": row["status"],
        "created": int(row["created_at"].timestamp()),
    }


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join((method.encode(), path.encode(), body))).hexdigest()


async def once(acquirer: Acquirer, key: str, request_fingerprint: str, operation: Operation) -> Answer:
    """`operation`'s answer, done once per key: a repeat gets the first answer; the same key
    with another request is refused. A refused operation stores nothing."""
    async with acquirer.database.transaction() as connection:
        await repository.lock_key(connection, key)
        stored = await repository.stored_request(connection, key)
        if stored is not None:
            if stored["fingerprint"] != request_fingerprint:
                raise IdempotencyError("This Idempotency-Key was used with another request.", param="Idempotency-Key")
            answer: Answer = stored["body"]
            return answer
        moment = acquirer.database.clock.now()
        answer = await operation(connection, moment)
        await repository.store_request(
            connection, key, fingerprint=request_fingerprint, status_code=200, body=answer, moment=moment
        )
        return answer


def create_payment(request: PaymentCreate) -> Operation:
    async def operation(connection: Connection, moment: datetime) -> Answer:
        card = request.card
        decline = decline_for(card.number, int(card.exp_month), int(card.exp_year), year=moment.year, month=moment.month)
        if decline is not None:
            status = PaymentStatus.DECLINED
        else:
            status = PaymentStatus.CAPTURED if request.capture else PaymentStatus.AUTHORIZED
        row = await repository.insert_payment(
            connection,
            {
                "id": new_id("acqp"),
                "merchant": request.merchant,
                "reference": request.reference,
                "amount": request.amount,
                "currency": request.currency,
                "status": status,
                "decline_code": None if decline is None else decline.code,
                "decline_message": None if decline is None else decline.message,
                "card_last4": card.number[-4:],
                "amount_captured": request.amount if status == PaymentStatus.CAPTURED else 0,
            },
            moment,
        )
        # A reference is one payment: asked again under another key, it answers what it did.
        if row is None:
            row = await repository.payment_by_reference(connection, request.merchant, request.reference)
        assert row is not None  # noqa: S101  (the insert conflicted with this very row)
        return payment_resource(row)

    return operation


async def _payment(connection: Connection, payment_id: str) -> AnyRow:
    row = await repository.payment(connection, payment_id, for_update=True)
    if row is None:
        raise ResourceMissing(f"No such payment: '{payment_id}'", param="id")
    return row


def capture_payment(payment_id: str, request: Capture) -> Operation:
    async def operation(connection: Connection, moment: datetime) -> Answer:
        row = await _payment(connection, payment_id)
        check_capture(PaymentStatus(row["status"]), row["amount"], request.amount)
        captured = await repository.set_status(connection, payment_id, PaymentStatus.CAPTURED, request.amount, moment)
        return payment_resource(captured)

    return operation


def void_payment(payment_id: str) -> Operation:
    async def operation(connection: Connection, moment: datetime) -> Answer:
        row = await _payment(connection, payment_id)
        check_void(PaymentStatus(row["status"]))
        return payment_resource(await repository.set_status(connection, payment_id, PaymentStatus.VOIDED, 0, moment))

    return operation


def refund_payment(payment_id: str, request: RefundCreate) -> Operation:
    async def operation(connection: Connection, moment: datetime) -> Answer:
        row = await _payment(connection, payment_id)
        existing = await repository.refund_by_reference(connection, payment_id, request.reference)
        if existing is not None:
            return refund_resource(existing)
        check_refund(PaymentStatus(row["status"]), row["amount_captured"], row["amount_refunded"], request.amount)
        refund = await repository.insert_refund(
            connection, new_id("acqr"), payment_id, reference=request.reference, amount=request.amount, moment=moment
        )
        assert refund is not None  # noqa: S101  (the payment's row lock orders refunds of one reference)
        return refund_resource(refund)

    return operation


async def retrieve_payment(acquirer: Acquirer, payment_id: str) -> Answer:
    async with acquirer.database.connection() as connection:
        row = await repository.payment(connection, payment_id)
    if row is None:
        raise ResourceMissing(f"No such payment: '{payment_id}'", param="id")
    return payment_resource(row)


async def find_payment(acquirer: Acquirer, merchant: str, reference: str) -> Answer:
    """The payment Bastion sent with this reference (its charge id): how a sync finds a payment
    whose answer was lost."""
    async with acquirer.database.connection() as connection:
        row = await repository.payment_by_reference(connection, merchant, reference)
    if row is None:
        raise ResourceMissing(f"No payment with reference '{reference}'", param="reference")
    return payment_resource(row)
