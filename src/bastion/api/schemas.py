"""Shapes shared by every route's documentation: the error body."""

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    type: str
    code: str
    message: str
    param: str | None
    request_id: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


def documented(model: type[BaseModel] | Any, *, writes: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route: its 200 body and every error it can return."""
    responses: dict[int | str, dict[str, Any]] = {200: {"model": model}}
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
