"""Why payments refuses a request: one class per stable code."""

from bastion.kernel.errors import CardError, InvalidRequest


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


class PaymentIntentInFlight(InvalidRequest):
    """Another request is changing this PaymentIntent at the processor (a capture or a cancel);
    retry once it has finished."""

    code = "payment_intent_in_flight"


class ConnectorCapabilityUnsupported(InvalidRequest):
    """The connector the payment goes through does not offer what it needs (a currency, a card
    brand, a manual or partial capture, a partial or second refund): refused before it is tried
    (GET /v1/connectors lists what each offers)."""

    code = "connector_capability_unsupported"


class ConnectorUnavailable(InvalidRequest):
    """No connector can take this payment: live-mode payments need a processor account, and the
    sandbox acquirer takes test-mode payments only."""

    code = "connector_unavailable"


class CardDeclined(CardError):
    """The issuer declined the card; `decline_code` says why (`generic_decline`,
    `insufficient_funds`, `lost_card`...)."""

    code = "card_declined"


class IncorrectCvc(CardError):
    """The card's security code is incorrect."""

    code = "incorrect_cvc"


class ProcessingError(CardError):
    """The card could not be charged for a reason of the processor's, or Bastion could not send
    the attempt; trying again may succeed."""

    code = "processing_error"


class PaymentIntentAuthenticationFailure(CardError):
    """The cardholder did not complete the 3-D Secure challenge the issuer asked for
    (`decline_code: authentication_failed`); the intent awaits another payment method."""

    code = "payment_intent_authentication_failure"


class DisputeRefused(InvalidRequest):
    """The processor refused what was asked of a dispute (evidence for, or the acceptance of, a
    dispute it has closed already)."""

    code = "dispute_refused"


class DisputeUnexpectedState(InvalidRequest):
    """The dispute's status does not allow what was asked: evidence and acceptance only while it
    needs a response."""

    code = "dispute_unexpected_state"


class ChargeDisputed(InvalidRequest):
    """A refund of a disputed charge: its funds are held for the dispute already."""

    code = "charge_disputed"


class NotificationEarly(InvalidRequest):
    """A connector's notification names an object Bastion has not caught up with yet (a
    settlement of a capture whose answer is still on its way): nothing is taken, and the
    connector sends it again later."""

    code = "notification_early"


class ReviewClosed(InvalidRequest):
    """The review is closed already: approved or rejected."""

    code = "review_closed"
