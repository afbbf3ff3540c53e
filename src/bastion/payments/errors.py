"""Why payments refuses a request: one class per stable code."""

from bastion.kernel.errors import InvalidRequest


class TokenAlreadyUsed(InvalidRequest):
    """The card token was exchanged for a payment method already; tokens are single-use."""

    code = "token_already_used"
