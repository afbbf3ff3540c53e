"""Why the sandbox acquirer refuses a request (its own protocol's codes)."""

from bastion.kernel.errors import InvalidRequest


class PaymentStateInvalid(InvalidRequest):
    """The acquirer's payment is not in a status that allows the operation (a capture of a voided
    payment, a refund of an uncaptured one)."""

    code = "payment_state_invalid"
