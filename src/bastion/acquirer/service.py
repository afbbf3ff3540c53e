"""What the sandbox acquirer does: authorize (and capture at once, if asked; or first ask for a
3-D Secure challenge), capture, void and refund, each once per Idempotency-Key, recorded in its
own schema with the notification that tells Bastion of it."""

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from bastion.acquirer import repository
from bastion.acquirer.domain import (
    AUTHENTICATION_FAILED,
    DisputeStatus,
    Fate,
    PaymentStatus,
    check_capture,
    check_challenge,
    check_dispute_response,
    check_refund,
    check_void,
    decline_for,
    dispute_reason,
    fate_of,
    needs_challenge,
    review_outcome,
)
from bastion.acquirer.schemas import Capture, DisputeEvidence, PaymentCreate, RefundCreate
from bastion.kernel.errors import IdempotencyError, ResourceMissing
from bastion.kernel.ids import new_id
from bastion.platform.db import AnyRow, Connection, Database
from bastion.platform.settings import AcquirerChaos

Answer = dict[str, Any]
Operation = Callable[[Connection, datetime], Awaitable[Answer]]


# Keys whose attempts chaos counts, at most: the oldest are forgotten beyond.
CHAOS_KEYS_MAX = 100_000
# A challenge not answered within this is declined (`authentication_failed`), a batch at a time.
CHALLENGE_EXPIRY = timedelta(minutes=15)
EXPIRY_BATCH_MAX = 100
# How long a disputing cardholder's issuer gives the merchant to answer.
EVIDENCE_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Acquirer:
    database: Database
    # The secret Bastion's connector presents (`Authorization: Bearer ...`).
    api_key: str
    # Where the cardholder's pages (the 3-D Secure challenge) are served, over plain HTTP on loopback.
    pages_url: str
    # Where notifications go (None: kept, not sent), signed with `notification_secret`.
    notify_url: str | None
    notification_secret: bytes
    client: httpx.AsyncClient
    # Where the daily settlement reports are written.
    report_dir: Path
    # How long submitted evidence is in review before the issuer decides.
    dispute_review: timedelta = timedelta(seconds=5)
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
        "next_action_url": row["challenge_url"],
        "created": int(row["created_at"].timestamp()),
    }


def dispute_resource(row: AnyRow) -> Answer:
    return {
        "id": row["id"],
        "object": "dispute",
        "payment": row["payment_id"],
        "merchant": row["merchant"],
        "reference": row["reference"],
        "amount": row["amount"],
        "currency": row["currency"],
        "reason": row["reason"],
        "status": row["status"],
        "evidence_due_by": int(row["evidence_due_by"].timestamp()),
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


async def notify(connection: Connection, kind: str, merchant: str, data: Answer, moment: datetime) -> None:
    """Record the notification of a change, in the change's transaction; it is sent after it commits."""
    notification_id = new_id("acqn")
    body = {
        "id": notification_id,
        "object": "notification",
        "type": kind,
        "created": int(moment.timestamp()),
        "merchant": merchant,
        "data": data,
    }
    await repository.insert_notification(connection, notification_id, kind, body, moment)


async def _notify_payment(connection: Connection, row: AnyRow, moment: datetime) -> Answer:
    payment = payment_resource(row)
    await notify(connection, f"payment.{row['status']}", row["merchant"], payment, moment)
    if row["status"] == PaymentStatus.CAPTURED and row["dispute_reason"] is not None:
        await _open_dispute(connection, row, moment)
    return payment


async def _open_dispute(connection: Connection, payment: AnyRow, moment: datetime) -> None:
    """The cardholder disputes the captured amount: Bastion is told (`dispute.created`)."""
    dispute_id = new_id("acqd")
    await repository.insert_dispute(
        connection,
        dispute_id,
        payment,
        amount=payment["amount_captured"],
        reason=payment["dispute_reason"],
        due_by=moment + EVIDENCE_WINDOW,
        moment=moment,
    )
    await _notify_dispute(connection, dispute_id, "dispute.created", moment)


async def _notify_dispute(connection: Connection, dispute_id: str, kind: str, moment: datetime) -> Answer:
    row = await repository.dispute(connection, dispute_id)
    assert row is not None  # noqa: S101  (written in this transaction)
    dispute = dispute_resource(row)
    await notify(connection, kind, row["merchant"], dispute, moment)
    return dispute


def create_payment(acquirer: Acquirer, request: PaymentCreate) -> Operation:
    async def operation(connection: Connection, moment: datetime) -> Answer:
        card = request.card
        payment_id = new_id("acqp")
        decline = decline_for(card.number, int(card.exp_month), int(card.exp_year), year=moment.year, month=moment.month)
        challenge_url = None
        if decline is not None:
            status = PaymentStatus.DECLINED
        elif needs_challenge(card.number) or request.three_d_secure == "required":
            status = PaymentStatus.REQUIRES_ACTION
            challenge_url = f"{acquirer.pages_url}/challenges/{payment_id}?token={secrets.token_urlsafe(24)}"
        else:
            status = PaymentStatus.CAPTURED if request.capture else PaymentStatus.AUTHORIZED
        row = await repository.insert_payment(
            connection,
            {
                "id": payment_id,
                "merchant": request.merchant,
                "reference": request.reference,
                "amount": request.amount,
                "currency": request.currency,
                "status": status,
                "decline_code": None if decline is None else decline.code,
                "decline_message": None if decline is None else decline.message,
                "card_last4": card.number[-4:],
                "amount_captured": request.amount if status == PaymentStatus.CAPTURED else 0,
                "capture": request.capture,
                "challenge_url": challenge_url,
                "return_url": request.return_url,
                "dispute_reason": None if decline is not None else dispute_reason(card.number),
            },
            moment,
        )
        # A reference is one payment: asked again under another key, it answers what it did.
        if row is None:
            row = await repository.payment_by_reference(connection, request.merchant, request.reference)
            assert row is not None  # noqa: S101  (the insert conflicted with this very row)
            return payment_resource(row)
        if status == PaymentStatus.REQUIRES_ACTION:
            # The answer says so; the outcome of the challenge is what Bastion will be told.
            return payment_resource(row)
        return await _notify_payment(connection, row, moment)

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
        return await _notify_payment(connection, captured, moment)

    return operation


def void_payment(payment_id: str) -> Operation:
    async def operation(connection: Connection, moment: datetime) -> Answer:
        row = await _payment(connection, payment_id)
        check_void(PaymentStatus(row["status"]))
        voided = await repository.set_status(connection, payment_id, PaymentStatus.VOIDED, 0, moment)
        return await _notify_payment(connection, voided, moment)

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
        answer = refund_resource(refund)
        await notify(connection, "refund.succeeded", row["merchant"], answer, moment)
        return answer

    return operation


def _challenge_token(challenge_url: str | None) -> str | None:
    if challenge_url is None:
        return None
    return parse_qs(urlsplit(challenge_url).query).get("token", [None])[0]


async def challenged_payment(acquirer: Acquirer, payment_id: str, token: str) -> AnyRow:
    """The payment waiting for the challenge this token opens."""
    async with acquirer.database.connection() as connection:
        row = await repository.payment(connection, payment_id)
    return _check_token(row, payment_id, token)


def _check_token(row: AnyRow | None, payment_id: str, token: str) -> AnyRow:
    expected = None if row is None else _challenge_token(row["challenge_url"])
    if row is None or expected is None or not hmac.compare_digest(expected.encode(), token.encode()):
        raise ResourceMissing(f"No authentication is waiting for the payment '{payment_id}' with this link.", param="id")
    return row


async def complete_challenge(acquirer: Acquirer, payment_id: str, token: str, *, authenticated: bool) -> AnyRow:
    """The cardholder's answer to the challenge: the payment goes on as asked (authorized, or
    captured at once), or is declined as `authentication_failed`; Bastion is told either way."""
    async with acquirer.database.transaction() as connection:
        row = _check_token(await repository.payment(connection, payment_id, for_update=True), payment_id, token)
        check_challenge(PaymentStatus(row["status"]))
        moment = acquirer.database.clock.now()
        if authenticated:
            status = PaymentStatus.CAPTURED if row["capture"] else PaymentStatus.AUTHORIZED
            captured = row["amount"] if status == PaymentStatus.CAPTURED else 0
            row = await repository.set_status(connection, payment_id, status, captured, moment)
        else:
            failed = AUTHENTICATION_FAILED
            row = await repository.decline(connection, payment_id, failed.code, failed.message, moment)
        await _notify_payment(connection, row, moment)
        return row


async def expire_challenges(acquirer: Acquirer) -> int:
    """Decline the challenges left unanswered past `CHALLENGE_EXPIRY`, telling Bastion; how many."""
    async with acquirer.database.transaction() as connection:
        moment = acquirer.database.clock.now()
        failed = AUTHENTICATION_FAILED
        rows = await repository.expire_challenges(
            connection, moment - CHALLENGE_EXPIRY, code=failed.code, message=failed.message, moment=moment, limit=EXPIRY_BATCH_MAX
        )
        for row in rows:
            await _notify_payment(connection, row, moment)
    return len(rows)


async def _dispute(connection: Connection, dispute_id: str) -> AnyRow:
    row = await repository.dispute(connection, dispute_id, for_update=True)
    if row is None:
        raise ResourceMissing(f"No such dispute: '{dispute_id}'", param="id")
    return row


def respond_to_dispute(dispute_id: str, request: DisputeEvidence) -> Operation:
    """Evidence kept, and submitted if asked: then in review until the issuer decides."""

    async def operation(connection: Connection, moment: datetime) -> Answer:
        row = await _dispute(connection, dispute_id)
        check_dispute_response(DisputeStatus(row["status"]))
        evidence = row["evidence"] | request.evidence
        status = DisputeStatus.UNDER_REVIEW if request.submit else DisputeStatus.NEEDS_RESPONSE
        submitted_at = moment if request.submit else None
        await repository.update_dispute(
            connection, dispute_id, status=status, evidence=evidence, submitted_at=submitted_at, moment=moment
        )
        if request.submit:
            return await _notify_dispute(connection, dispute_id, "dispute.updated", moment)
        return dispute_resource(await _dispute(connection, dispute_id))

    return operation


def accept_dispute(dispute_id: str) -> Operation:
    """The merchant accepts the dispute: it is lost, and the cardholder keeps the funds."""

    async def operation(connection: Connection, moment: datetime) -> Answer:
        row = await _dispute(connection, dispute_id)
        check_dispute_response(DisputeStatus(row["status"]))
        await repository.update_dispute(
            connection, dispute_id, status=DisputeStatus.LOST, evidence=row["evidence"], submitted_at=None, moment=moment
        )
        return await _notify_dispute(connection, dispute_id, "dispute.closed", moment)

    return operation


async def decide_disputes(acquirer: Acquirer) -> int:
    """The issuer's decision on evidence in review for `dispute_review`, a batch at most; how many."""
    async with acquirer.database.transaction() as connection:
        moment = acquirer.database.clock.now()
        decided = await repository.reviewed_disputes(connection, moment - acquirer.dispute_review, EXPIRY_BATCH_MAX)
        for dispute_id in decided:
            row = await _dispute(connection, dispute_id)
            await repository.update_dispute(
                connection,
                dispute_id,
                status=review_outcome(row["evidence"]),
                evidence=row["evidence"],
                submitted_at=row["submitted_at"],
                moment=moment,
            )
            await _notify_dispute(connection, dispute_id, "dispute.closed", moment)
    return len(decided)


async def retrieve_dispute(acquirer: Acquirer, dispute_id: str) -> Answer:
    async with acquirer.database.connection() as connection:
        row = await repository.dispute(connection, dispute_id)
    if row is None:
        raise ResourceMissing(f"No such dispute: '{dispute_id}'", param="id")
    return dispute_resource(row)


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
