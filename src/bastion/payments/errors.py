"""Why payments refuses a request: one class per stable code."""

from bastion.kernel.errors import InvalidRequest


class TokenAlreadyUsed(InvalidRequest):
    """The card token was exchanged for a payment method already; tokens are single-use."""

    code = "token_already_used"


class PaymentIntentUnexpectedState(InvalidRequest):
    """The PaymentIntent's status does not allow what was asked (confirm, capture, cancel or
    update); the message names the status and the statuses that would."""

    code = "payment_intent_unexpected_state"


class AmountTooLarge(InvalidRequest):
    """A capture above what is capturable, or a refund above what is left of the captured amount."""

    code = "amount_too_large"


class ChargeAlreadyRefunded(InvalidRequest):
    """A refund of a charge whose captured amount is refunded in full already."""

    code = "charge_already_refunded"
