"""The error tree. Each error has a stable `type` and `code`; HTTP status mapping
lives only at the HTTP edge (`bastion.platform.http.errors`)."""

from typing import Any


class BastionError(Exception):
    type: str = "api_error"
    code: str = "internal_error"
    # Per-item outcomes of a rejected batch, reported beside the error.
    results: list[dict[str, Any]] | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(BastionError):
    type = "invalid_request_error"
    code = "parameter_invalid"


class ResourceMissing(InvalidRequest):
    code = "resource_missing"


class BodyTooLarge(InvalidRequest):
    code = "body_too_large"


class AuthenticationFailed(BastionError):
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(BastionError):
    type = "permission_error"
    code = "scope_missing"


class IdempotencyError(BastionError):
    type = "idempotency_error"
    code = "idempotency_key_reused"


class IdempotencyInFlight(IdempotencyError):
    code = "idempotency_key_in_use"


class RateLimited(BastionError):
    type = "rate_limit_error"
    code = "rate_limit"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ProcessorUnavailable(BastionError):
    """A processor did not answer in time, or answered what cannot be passed on: the outcome
    is unknown to the caller, which records it so and asks again later."""

    type = "api_error"
    code = "processor_unavailable"


class VaultUnavailable(BastionError):
    """The vault did not answer: nothing was exchanged or forwarded as far as the API knows."""

    type = "api_error"
    code = "vault_unavailable"


class InvariantViolated(BastionError):
    code = "invariant_violated"


class ConfigurationError(BastionError):
    code = "configuration_error"


def invariant(condition: bool, message: str) -> None:
    """Runtime check that survives `python -O` (unlike assert)."""
    if not condition:
        raise InvariantViolated(message)
