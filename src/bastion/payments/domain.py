"""The rules of payments, without I/O: which action a PaymentIntent's status allows, how much
may be captured and refunded, and what a payment costs the merchant (docs/payments.md).

Pure functions over values, so that the service, the sync job, the janitor and the property
tests apply one set of rules.
"""

import enum
from dataclasses import dataclass

from bastion.connectors import Capabilities
from bastion.kernel.errors import CardError, InvalidRequest
from bastion.kernel.money import AMOUNT_MINOR_MAX, Money, exponent
from bastion.payments.errors import (
    AmountTooLarge,
    CardDeclined,
    ChargeAlreadyRefunded,
    IncorrectCvc,
    PaymentIntentAuthenticationFailure,
    PaymentIntentUnexpectedState,
    ProcessingError,
)


class IntentStatus(enum.StrEnum):
    """Stripe's PaymentIntent statuses, exactly."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    CANCELED = "canceled"
    SUCCEEDED = "succeeded"


class IntentAction(enum.StrEnum):
    """What a merchant asks of an intent through the API."""

    UPDATE = "update"
    CONFIRM = "confirm"
    CAPTURE = "capture"
    CANCEL = "cancel"


FINAL_STATUSES = frozenset({IntentStatus.CANCELED, IntentStatus.SUCCEEDED})

# As Stripe documents them, with two differences: an intent in `processing` cannot be updated or
# canceled, because the acquirer's answer is outstanding and only a sync or a notification may
# settle it (Stripe allows a cancel there "in rare cases"); and one in `requires_action` cannot
# be confirmed again while its 3-D Secure challenge is open at the acquirer.
_BEFORE_AUTHORIZATION = frozenset(
    {IntentStatus.REQUIRES_PAYMENT_METHOD, IntentStatus.REQUIRES_CONFIRMATION, IntentStatus.REQUIRES_ACTION}
)
_OPEN = _BEFORE_AUTHORIZATION | {IntentStatus.REQUIRES_CAPTURE}
_ALLOWED: dict[IntentAction, frozenset[IntentStatus]] = {
    IntentAction.UPDATE: _OPEN,
    # Not in `requires_action`: the challenge's outcome settles the attempt, or a cancel ends it.
    IntentAction.CONFIRM: frozenset({IntentStatus.REQUIRES_PAYMENT_METHOD, IntentStatus.REQUIRES_CONFIRMATION}),
    IntentAction.CAPTURE: frozenset({IntentStatus.REQUIRES_CAPTURE}),
    IntentAction.CANCEL: _OPEN,
}
_PAST = {
    IntentAction.UPDATE: "updated",
    IntentAction.CONFIRM: "confirmed",
    IntentAction.CAPTURE: "captured",
    IntentAction.CANCEL: "canceled",
}


def check_action(action: IntentAction, status: IntentStatus) -> None:
    """`PaymentIntentUnexpectedState` naming the status unless `status` allows `action`."""
    allowed = _ALLOWED[action]
    if status not in allowed:
        expected = ", ".join(sorted(allowed))
        raise PaymentIntentUnexpectedState(
            f"You cannot {action} this PaymentIntent because it has a status of {status}. "
            f"Only a PaymentIntent with one of the following statuses may be {_PAST[action]}: {expected}."
        )


def capture_amount(requested: int | None, capturable: int) -> int:
    """What a capture takes: all that is capturable by default, or part of it (the rest is
    released); never more, never nothing."""
    if requested is None:
        return capturable
    if requested <= 0:
        raise InvalidRequest("amount_to_capture must be a positive integer of minor units.", param="amount_to_capture")
    if requested > capturable:
        raise AmountTooLarge(
            f"amount_to_capture ({requested}) exceeds the amount capturable ({capturable}).", param="amount_to_capture"
        )
    return requested


def refund_amount(requested: int | None, captured: int, refunded: int) -> int:
    """What a refund returns: all that is left of the captured amount by default, or part of
    it; never more than is left, never nothing."""
    left = captured - refunded
    if left <= 0:
        raise ChargeAlreadyRefunded("The charge has been refunded in full already.", param="amount")
    if requested is None:
        return left
    if requested <= 0:
        raise InvalidRequest("amount must be a positive integer of minor units.", param="amount")
    if requested > left:
        raise AmountTooLarge(f"amount ({requested}) exceeds what is left to refund ({left}).", param="amount")
    return requested


# Basis points: 1 = 0.01 %.
BASIS_POINTS_PER_UNIT = 10_000
DEFAULT_BASIS_POINTS = 290
_FIXED_FEE_CENTS = 30
_CENT_PLACES = 2


def default_fixed_fee(currency: str) -> int:
    """30 minor units where a currency has cents, scaled by its exponent (KWD: 300 fils), and
    none where it has no minor unit below the major one (JPY): the platform's default price
    is 2.9 % plus that, per captured payment."""
    places = exponent(currency)
    return _FIXED_FEE_CENTS * 10 ** (places - _CENT_PLACES) if places >= _CENT_PLACES else 0


@dataclass(frozen=True, slots=True)
class Pricing:
    basis_points: int
    fixed_minor: int

    def __post_init__(self) -> None:
        if not 0 <= self.basis_points <= BASIS_POINTS_PER_UNIT:
            raise InvalidRequest(f"basis_points must be between 0 and {BASIS_POINTS_PER_UNIT} (100 %)", param="basis_points")
        if not 0 <= self.fixed_minor <= AMOUNT_MINOR_MAX:
            raise InvalidRequest("fixed_minor must be a non-negative integer of minor units", param="fixed_minor")

    @classmethod
    def default(cls, currency: str) -> "Pricing":
        return cls(DEFAULT_BASIS_POINTS, default_fixed_fee(currency))

    def fee(self, captured: Money) -> Money:
        """The platform's fee on a capture: `captured * basis_points / 10,000` rounded half up to
        a whole minor unit, plus the fixed amount, and never more than was captured (so that a
        merchant's net is never negative). Integers only."""
        proportional = (captured.amount_minor * self.basis_points * 2 + BASIS_POINTS_PER_UNIT) // (2 * BASIS_POINTS_PER_UNIT)
        return Money(min(proportional + self.fixed_minor, captured.amount_minor), captured.currency)


# What the platform charges a merchant for a dispute, as Stripe does: 15.00 where a currency has
# cents (scaled by its exponent), 1,500 of a currency without (JPY). Kept if the dispute is won.
_DISPUTE_FEE_CENTS = 1_500


def dispute_fee(currency: str) -> Money:
    places = exponent(currency)
    fee = _DISPUTE_FEE_CENTS * 10 ** (places - _CENT_PLACES) if places >= _CENT_PLACES else _DISPUTE_FEE_CENTS
    return Money(fee, currency)


class DisputeStatus(enum.StrEnum):
    WARNING_NEEDS_RESPONSE = "warning_needs_response"
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"


# How far along a dispute is: a notification or an answer moves it forward only, so that any
# order of them ends in the same state.
_DISPUTE_RANK = {
    DisputeStatus.WARNING_NEEDS_RESPONSE: 0,
    DisputeStatus.NEEDS_RESPONSE: 0,
    DisputeStatus.UNDER_REVIEW: 1,
    DisputeStatus.WON: 2,
    DisputeStatus.LOST: 2,
}
DISPUTE_OPEN = frozenset({DisputeStatus.WARNING_NEEDS_RESPONSE, DisputeStatus.NEEDS_RESPONSE})
DISPUTE_CLOSED = frozenset({DisputeStatus.WON, DisputeStatus.LOST})


def dispute_moves(current: DisputeStatus, told: DisputeStatus) -> bool:
    """Whether being told `told` moves a dispute that is `current`."""
    return _DISPUTE_RANK[told] > _DISPUTE_RANK[current]


# Most declines are `card_declined` with the issuer's reason as its decline_code; Stripe gives
# these reasons a code of their own. An expired card stays `card_declined` (decline_code
# `expired_card`): Bastion's `expired_card` code is the tokenization's refusal (a 400).
_OWN_CODES: dict[str, type[CardError]] = {
    "incorrect_cvc": IncorrectCvc,
    "processing_error": ProcessingError,
    "authentication_failed": PaymentIntentAuthenticationFailure,
}


def card_error(decline_code: str | None, message: str | None) -> CardError:
    """The error a failed attempt answers with: not raised, but recorded and returned as the
    intent's `last_payment_error`."""
    if decline_code is None:
        return ProcessingError(message or "An error occurred while processing your card. Try again in a little bit.")
    kind = _OWN_CODES.get(decline_code, CardDeclined)
    return kind(message or "Your card was declined.")


# An outcome's risk fields until the risk engine's decision is merged in (payments/intents.py).
_NOT_ASSESSED = {"risk_score": None, "rule": None}


def approved_outcome() -> dict[str, object]:
    return {
        "network_status": "approved_by_network",
        "type": "authorized",
        "reason": None,
        "seller_message": "Payment complete.",
        "risk_level": "not_assessed",
        **_NOT_ASSESSED,
    }


def declined_outcome(decline_code: str | None) -> dict[str, object]:
    if decline_code is None:
        return {
            "network_status": "not_sent_to_network",
            "type": "invalid",
            "reason": None,
            "seller_message": "The payment could not be sent to the processor.",
            "risk_level": "not_assessed",
            **_NOT_ASSESSED,
        }
    return {
        "network_status": "declined_by_network",
        "type": "issuer_declined",
        "reason": decline_code,
        "seller_message": "The bank did not return any further details with this decline.",
        "risk_level": "not_assessed",
        **_NOT_ASSESSED,
    }


def review_outcome() -> dict[str, object]:
    """An attempt authorized and sent to review by the risk engine: not captured until approved."""
    return approved_outcome() | {"type": "manual_review", "seller_message": "Bastion placed this payment in review."}


def blocked_outcome(rule_id: str | None) -> dict[str, object]:
    """An attempt the risk engine blocked: never sent to the network."""
    return {
        "network_status": "not_sent_to_network",
        "type": "blocked",
        "reason": "rule" if rule_id is not None else "highest_risk_level",
        "seller_message": "Bastion blocked this payment as too risky.",
        "risk_level": "not_assessed",
        **_NOT_ASSESSED,
    }


def unknown_outcome() -> dict[str, object]:
    return {
        "network_status": None,
        "type": "unknown",
        "reason": None,
        "seller_message": "The processor's answer is not known yet; the payment is being checked.",
        "risk_level": "not_assessed",
        **_NOT_ASSESSED,
    }


@dataclass(frozen=True, slots=True)
class Needs:
    """What an attempt asks of its connector, before it is sent."""

    currency: str
    brand: str
    manual_capture: bool


def unmet_need(capabilities: Capabilities, needs: Needs) -> tuple[str, str] | None:
    """The first of `needs` the connector lacks, as (the request field it comes from, what is
    missing); None when it offers them all."""
    if capabilities.currencies is not None and needs.currency not in capabilities.currencies:
        return "currency", f"the currency {needs.currency}"
    if needs.brand not in capabilities.brands:
        return "payment_method", f"{needs.brand} cards"
    if needs.manual_capture and not capabilities.manual_capture:
        return "capture_method", "manual capture"
    return None
