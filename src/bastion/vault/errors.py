"""Why the vault refuses a card, a token or a forward: one class per stable code.
Card codes are Stripe's, so that card forms written for Stripe show the same messages."""

from bastion.kernel.errors import BastionError, InvalidRequest, PermissionDenied, ProcessorUnavailable, RateLimited


class CardNumberInvalid(InvalidRequest):
    """The card number has other characters than digits, spaces and dashes, or the wrong length for its brand."""

    code = "invalid_number"


class CardNumberIncorrect(InvalidRequest):
    """The card number fails the Luhn check."""

    code = "incorrect_number"


class ExpiryMonthInvalid(InvalidRequest):
    """The expiry month is not 1 to 12."""

    code = "invalid_expiry_month"


class ExpiryYearInvalid(InvalidRequest):
    """The expiry year is in the past or too far ahead."""

    code = "invalid_expiry_year"


class CardExpired(InvalidRequest):
    """The card's expiry month has passed."""

    code = "expired_card"


class CvcInvalid(InvalidRequest):
    """The security code is not 3 digits (4 for American Express)."""

    code = "invalid_cvc"


class NameInvalid(InvalidRequest):
    """The cardholder name is empty, too long or has control characters."""

    code = "invalid_name"


class LiveCardInTestMode(InvalidRequest):
    """A test-mode key tokenized a number that is not one of the sandbox's test cards."""

    code = "live_card_in_test_mode"


class CardTestingSuspected(RateLimited):
    """A client IP, device or publishable key tried too many cards, or failed too often, within
    the card-testing window: its tokenizations wait until `Retry-After`."""

    code = "card_testing_suspected"


class OriginNotAllowed(InvalidRequest):
    """The card fields were asked for an origin the merchant has not registered."""

    code = "origin_not_allowed"


class LiveModeRequiresHsm(PermissionDenied):
    """A live-mode card on the local keyring, which serves development and test mode only."""

    code = "live_mode_requires_hsm"


class ConnectorNotTls(PermissionDenied):
    """A live-mode forward to a connector whose URL is not https (PCI DSS 4.2.1)."""

    code = "connector_not_tls"


class TokenExpired(InvalidRequest):
    """The token was not exchanged within its 15 minutes."""

    code = "token_expired"


class CvcUnavailable(InvalidRequest):
    """A forward wants the CVC, which was used once already or is older than one hour."""

    code = "cvc_unavailable"


class ProcessorTimeout(ProcessorUnavailable):
    """The processor did not answer a forward in time."""

    code = "processor_timeout"


class ProcessorResponseTooLarge(ProcessorUnavailable):
    """The processor's answer to a forward exceeds its size limit."""

    code = "processor_response_too_large"


class DecryptionFailed(BastionError):
    """A wrapped key or ciphertext that does not authenticate: tampered, bound to another record,
    or under a key version that did not make it. Never says more (no oracle)."""

    code = "decryption_failed"
