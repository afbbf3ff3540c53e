"""The error tree. Each error has a stable `type` and `code`; HTTP status mapping
lives only at the HTTP edge (`bastion.platform.http.errors`)."""

from typing import Any


class BastionError(Exception):
    """The root: raised as itself, a failure nobody expected (`internal_error`, 500, its detail
    only in the log). A subclass's `type` groups its kind, `code` is the stable reason."""

    type: str = "api_error"
    code: str = "internal_error"
    # Per-item outcomes of a rejected batch, reported beside the error.
    results: list[dict[str, Any]] | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(BastionError):
    """The request cannot be served as sent; raised as itself, a field of the wrong type or out
    of its bounds (`parameter_invalid`). A subclass names a more precise reason."""

    type = "invalid_request_error"
    code = "parameter_invalid"


class ResourceMissing(InvalidRequest):
    """No such object: unknown, malformed, another merchant's or the other mode's id, or a list
    cursor that is not an object of the list (Stripe answers these alike)."""

    code = "resource_missing"


class BodyTooLarge(InvalidRequest):
    """The request body is larger than the listener's limit (`BASTION_MAX_BODY_BYTES`)."""

    code = "body_too_large"


class AuthenticationFailed(BastionError):
    """No key, or an unknown, revoked or wrong kind of key."""

    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(BastionError):
    """The caller is known but may not do this. Raised as itself (`scope_missing`): the key lacks
    the route's scope; the vault also raises it for a live-mode card sent to a connector that is
    not https, which deserves a code of its own once forwarding is public."""

    type = "permission_error"
    code = "scope_missing"


class IdempotencyError(BastionError):
    """An `Idempotency-Key` used before with another endpoint or body."""

    type = "idempotency_error"
    code = "idempotency_key_reused"


class IdempotencyInFlight(IdempotencyError):
    """A request with the same `Idempotency-Key` is being processed right now: retry later."""

    code = "idempotency_key_in_use"


class RateLimited(BastionError):
    """The API key used up its requests per second; `retry_after_s` says when to try again."""

    type = "rate_limit_error"
    code = "rate_limit"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class CardError(BastionError):
    """The card was declined, or could not be charged: a 402 whose body names the charge and
    the PaymentIntent, recorded like any other outcome. A subclass names the reason."""

    type = "card_error"
    code = "card_error"


class ProcessorUnavailable(BastionError):
    """A processor did not answer in time, or answered what cannot be passed on: the outcome
    is unknown to the caller, which records it so and asks again later."""

    type = "api_error"
    code = "processor_unavailable"


class ProcessorUnreachable(ProcessorUnavailable):
    """No connection to the processor could be made: nothing of the request was sent, so another
    processor may be tried (failover, docs/routing.md)."""

    code = "processor_unreachable"


class VaultUnavailable(BastionError):
    """The vault did not answer: nothing was exchanged or forwarded as far as the API knows."""

    type = "api_error"
    code = "vault_unavailable"


class InvariantViolated(BastionError):
    """A broken invariant (`invariant()`) stopped the work: a bug, answered as `internal_error`."""

    code = "invariant_violated"


class ConfigurationError(BastionError):
    """A setting, file or key the process needs is wrong or missing; the CLI prints it, a request
    is answered `internal_error`."""

    code = "configuration_error"


def invariant(condition: bool, message: str) -> None:
    """Runtime check that survives `python -O` (unlike assert)."""
    if not condition:
        raise InvariantViolated(message)
