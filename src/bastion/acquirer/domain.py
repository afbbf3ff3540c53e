"""The acquirer's rules, without I/O: how a test card answers, what each status allows, and
what its chaos does to a request in tests."""

import enum
import random
from dataclasses import dataclass

from bastion.acquirer.errors import PaymentStateInvalid
from bastion.kernel.errors import InvalidRequest
from bastion.platform.settings import AcquirerChaos


class PaymentStatus(enum.StrEnum):
    # Waiting for the cardholder's 3-D Secure challenge (its page: `challenge_url`).
    REQUIRES_ACTION = "requires_action"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"
    DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class Decline:
    code: str
    message: str


# Stripe's test cards and their answers (docs/payments.md, Test cards); any other card is approved.
_DECLINES = {
    "4000000000000002": Decline("generic_decline", "Your card was declined."),
    "4000000000009995": Decline("insufficient_funds", "Your card has insufficient funds."),
    "4000000000009987": Decline("lost_card", "Your card was declined."),
    "4000000000000069": Decline("expired_card", "Your card has expired."),
    "4000000000000127": Decline("incorrect_cvc", "Your card's security code is incorrect."),
    "4000000000000119": Decline("processing_error", "An error occurred while processing your card. Try again in a little bit."),
}
_EXPIRED = _DECLINES["4000000000000069"]
# Cards whose issuer asks for a 3-D Secure challenge before it answers.
_CHALLENGED = frozenset({"4000002760003184", "4000000000003220"})
# Cards whose cardholder disputes the payment once it is captured, and why.
_DISPUTED = {"4000000000000259": "fraudulent"}
# What wins a dispute in review, as in Stripe's test mode: evidence whose text says so.
WINNING_EVIDENCE = "winning_evidence"
AUTHENTICATION_FAILED = Decline("authentication_failed", "The cardholder failed the 3-D Secure authentication.")


def decline_for(number: str, exp_month: int, exp_year: int, *, year: int, month: int) -> Decline | None:
    """Why the acquirer declines this card now, or None if it approves it. A card past its
    expiry month is declined as expired, whatever its number."""
    if (exp_year, exp_month) < (year, month):
        return _EXPIRED
    return _DECLINES.get(number)


class DisputeStatus(enum.StrEnum):
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"


def dispute_reason(number: str) -> str | None:
    """Why this card's holder will dispute a capture, or None."""
    return _DISPUTED.get(number)


def check_dispute_response(status: DisputeStatus) -> None:
    if status != DisputeStatus.NEEDS_RESPONSE:
        raise PaymentStateInvalid(f"A dispute that is {status} takes no more evidence and cannot be accepted.", param="id")


def review_outcome(evidence: dict[str, str]) -> DisputeStatus:
    """The issuer's decision on submitted evidence: won if it carries the winning words."""
    return DisputeStatus.WON if WINNING_EVIDENCE in evidence.get("uncategorized_text", "") else DisputeStatus.LOST


def needs_challenge(number: str) -> bool:
    return number in _CHALLENGED


def check_challenge(status: PaymentStatus) -> None:
    if status != PaymentStatus.REQUIRES_ACTION:
        raise PaymentStateInvalid(f"This payment is {status}: its authentication is over.", param="id")


def check_capture(status: PaymentStatus, authorized: int, amount: int) -> None:
    if status != PaymentStatus.AUTHORIZED:
        raise PaymentStateInvalid(f"A payment that is {status} cannot be captured.", param="id")
    if not 0 < amount <= authorized:
        raise InvalidRequest(f"amount must be between 1 and the authorized {authorized}.", param="amount")


def check_void(status: PaymentStatus) -> None:
    # A payment waiting for its challenge may be voided too: the merchant gave up on it.
    if status not in (PaymentStatus.AUTHORIZED, PaymentStatus.REQUIRES_ACTION):
        raise PaymentStateInvalid(f"A payment that is {status} cannot be voided.", param="id")


def check_refund(status: PaymentStatus, captured: int, refunded: int, amount: int) -> None:
    if status != PaymentStatus.CAPTURED:
        raise PaymentStateInvalid(f"A payment that is {status} cannot be refunded.", param="payment")
    if not 0 < amount <= captured - refunded:
        raise InvalidRequest(f"amount must be between 1 and what is left to refund ({captured - refunded}).", param="amount")


@dataclass(frozen=True, slots=True)
class Fate:
    """What chaos does to one request: wait first, fail without acting, or act and hold the answer back."""

    latency_s: float
    fail: bool
    hang: bool


def fate_of(chaos: AcquirerChaos, key: str, attempt: int) -> Fate:
    """The same seed, key and attempt always meet the same fate, so that a run can be replayed;
    each retry of a key is another attempt, so that every request gets through in the end."""
    draw = random.Random(f"{chaos.seed}:{key}:{attempt}")  # noqa: S311  (test chaos, not a secret)
    latency_s = draw.uniform(0, chaos.latency_ms / 1000)
    roll = draw.randrange(1000)
    return Fate(
        latency_s=latency_s,
        fail=roll < chaos.error_per_mille,
        hang=chaos.error_per_mille <= roll < chaos.error_per_mille + chaos.timeout_per_mille,
    )
