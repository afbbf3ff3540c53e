"""Shapes shared by every route: metadata limits, and the error body (ADR 11)."""

from typing import Any, NotRequired, TypeVar

from typing_extensions import TypedDict

T = TypeVar("T", str, str | None)

METADATA_KEYS_MAX = 50
METADATA_KEY_LENGTH_MAX = 40
METADATA_VALUE_LENGTH_MAX = 500


def checked_metadata(value: dict[str, T]) -> dict[str, T]:
    """Stripe's metadata limits, for every object that carries metadata."""
    if len(value) > METADATA_KEYS_MAX:
        raise ValueError(f"at most {METADATA_KEYS_MAX} keys")
    for key, item in value.items():
        if not 1 <= len(key) <= METADATA_KEY_LENGTH_MAX:
            raise ValueError(f"keys must be 1 to {METADATA_KEY_LENGTH_MAX} characters")
        if item is not None and len(item) > METADATA_VALUE_LENGTH_MAX:
            raise ValueError(f"values must be at most {METADATA_VALUE_LENGTH_MAX} characters")
    return value


class ErrorDetail(TypedDict):
    type: str
    code: str
    message: str
    param: str | None
    request_id: str | None
    # Only on a rejected batch: one item per rejected entry.
    results: NotRequired[list[dict[str, Any]]]


class ErrorBody(TypedDict):
    error: ErrorDetail


def documented(resource: object, *, writes: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route: its 200 body, `resource` (a context's resource
    TypedDict, or a union of them), and every error it can return."""
    responses: dict[int | str, dict[str, Any]] = {200: {"model": resource}}
    errors = {
        400: "Invalid request",
        401: "Missing or invalid API key",
        403: "Scope missing",
        404: "No such object",
        413: "Body too large",
        429: "Rate limited",
    }
    if writes:
        errors[409] = "Idempotency-Key in use by a concurrent request"
        errors[415] = "Body not sent as `Content-Type: application/json`"
    for status, description in errors.items():
        responses[status] = {"model": ErrorBody, "description": description}
    return responses
