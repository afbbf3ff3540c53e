"""The only place where errors become HTTP: status codes and the Stripe-shaped body
`{"error": {"type", "code", "message", "param", "request_id"}}`."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import Match

from bastion.kernel import errors
from bastion.platform.http.responses import JsonResponse
from bastion.platform.http.schemas import ErrorBody, ErrorDetail
from bastion.platform.logging import get_logger, request_id_var
from bastion.platform.redaction import mask_card_numbers

_log = get_logger(__name__)


# Refusals of the request's shape, found before any context sees it.


class ParameterUnknown(errors.InvalidRequest):
    """A body field or query parameter the operation does not take."""

    code = "parameter_unknown"


class CursorsExclusive(errors.InvalidRequest):
    """Both `starting_after` and `ending_before` on one list request."""

    code = "cursors_exclusive"


class ParameterMissing(errors.InvalidRequest):
    """A required field is absent."""

    code = "parameter_missing"


class BodyMissing(errors.InvalidRequest):
    """The operation needs a JSON object body and got none."""

    code = "body_missing"


class BodyInvalid(errors.InvalidRequest):
    """The body is JSON, but not an object."""

    code = "body_invalid"


class BodyInvalidJson(errors.InvalidRequest):
    """The body is not valid JSON (RFC 8259: no NaN, no Infinity)."""

    code = "body_invalid_json"


class BodyInvalidForm(errors.InvalidRequest):
    """The body is sent form-encoded, but is not: text that is not UTF-8, a parameter without
    `=`, unpaired brackets, `[]` inside a name, or array indices with a gap."""

    code = "body_invalid_form"


class ParameterDuplicated(errors.InvalidRequest):
    """A form parameter given twice, or given both a value and nested parameters (`a=1&a[b]=2`)."""

    code = "parameter_duplicated"


class FormLimitExceeded(errors.InvalidRequest):
    """A form body past one of its limits: parameters, nesting, array items or name length
    (docs/stripe-compatibility.md)."""

    code = "form_limit_exceeded"


class ContentTypeUnsupported(errors.InvalidRequest):
    """A body sent as anything but JSON or, where the operation takes a body, form-encoded."""

    code = "content_type_unsupported"


class RouteMissing(errors.InvalidRequest):
    """No operation at this URL."""

    code = "route_missing"


class MethodNotAllowed(errors.InvalidRequest):
    """The URL exists, but not with this method; the `Allow` header lists those it takes."""

    code = "method_not_allowed"


class TooManyLargeRequests(errors.RateLimited):
    """More requests with bodies over 64 KiB at once than a process reads together."""

    code = "too_many_large_requests"


class HttpError(errors.InvalidRequest):
    """Any other HTTP-level refusal by the framework, with the status it chose."""

    code = "http_error"


_STATUS: list[tuple[type[errors.BastionError], int]] = [
    (errors.ResourceMissing, 404),
    (RouteMissing, 404),
    (MethodNotAllowed, 405),
    (ContentTypeUnsupported, 415),
    (errors.BodyTooLarge, 413),
    (errors.IdempotencyInFlight, 409),
    (errors.IdempotencyError, 400),
    (errors.InvalidRequest, 400),
    (errors.AuthenticationFailed, 401),
    (errors.PermissionDenied, 403),
    (errors.RateLimited, 429),
    (errors.CardError, 402),
    (errors.ProcessorUnavailable, 502),
    (errors.VaultUnavailable, 503),
]


def status_of(error: errors.BastionError) -> int:
    for error_type, status in _STATUS:
        if isinstance(error, error_type):
            return status
    return 500


def error_response(
    status: int,
    *,
    type_: str,
    code: str,
    message: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    results: list[dict[str, Any]] | None = None,
) -> JsonResponse:
    # A client may send a card number where a name goes (`{"4242...": 1}`): the refusal names the
    # parameter without repeating the number.
    error = ErrorDetail(
        type=type_,
        code=code,
        message=mask_card_numbers(message),
        param=None if param is None else mask_card_numbers(param),
        request_id=request_id_var.get(),
    )
    if results is not None:
        error["results"] = results
    return JsonResponse(ErrorBody(error=error), status_code=status, headers=headers)


def internal_error_response() -> JsonResponse:
    """The one body of every unexpected failure: it tells the caller nothing about the cause."""
    unexpected = errors.BastionError
    return error_response(500, type_=unexpected.type, code=unexpected.code, message="An internal error occurred")


def media_type_of(content_type: str | None) -> str:
    """`Content-Type`'s media type, without its parameters, in small letters."""
    return (content_type or "").partition(";")[0].strip().lower()


def _is_json(content_type: str | None) -> bool:
    # The media types FastAPI parses as JSON: application/json and application/*+json.
    main_type, _, subtype = media_type_of(content_type).partition("/")
    return main_type == "application" and (subtype == "json" or subtype.endswith("+json"))


def _param_of(location: tuple[Any, ...]) -> str | None:
    # ("body", "metadata", "key") -> "metadata[key]"; ("query", "limit") -> "limit"
    parts = [str(part) for part in location[1:] if not str(part).startswith("function-after")]
    if not parts:
        return None
    return parts[0] + "".join(f"[{part}]" for part in parts[1:])


def response_for(error: errors.BastionError, *, status: int | None = None, headers: dict[str, str] | None = None) -> JsonResponse:
    """The HTTP answer to one of our errors, wherever it is caught (handler or edge middleware);
    `status` only where the framework chose it."""
    status = status_of(error) if status is None else status
    if status == 500:
        _log.error("internal_error", error_type=type(error).__name__, message=error.message)
        return internal_error_response()
    if isinstance(error, errors.RateLimited):
        headers = {"Retry-After": str(error.retry_after_s)}
    return error_response(
        status,
        type_=error.type,
        code=error.code,
        message=error.message,
        param=error.param,
        headers=headers,
        results=error.results,
    )


async def _bastion_error(_request: Request, error: Exception) -> JsonResponse:
    if not isinstance(error, errors.BastionError):
        raise error
    return response_for(error)


async def _validation_error(request: Request, error: Exception) -> JsonResponse:
    if not isinstance(error, RequestValidationError):
        raise error
    first = error.errors()[0]
    kind = str(first.get("type", ""))
    location = tuple(first.get("loc", ()))
    if kind == "json_invalid":
        return response_for(BodyInvalidJson("The request body is not valid JSON"))
    param = _param_of(location)
    if kind == "extra_forbidden":
        return response_for(ParameterUnknown(f"Received unknown parameter: {param}", param=param))
    if kind == "missing" and param is None:
        return response_for(BodyMissing("A JSON object body is required"))
    if location[:1] == ("body",) and param is None:
        # FastAPI leaves a body sent as anything but JSON unparsed, so it fails as a whole.
        if not _is_json(request.headers.get("content-type")):
            return response_for(
                ContentTypeUnsupported(
                    "Send the request body as a JSON object with the header `Content-Type: application/json`, "
                    "or form-encoded with `Content-Type: application/x-www-form-urlencoded`"
                )
            )
        return response_for(BodyInvalid("The request body must be a JSON object"))
    # Pydantic prefixes messages of custom validators with "Value error, ".
    reason = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    message = f"Invalid {param}: {reason}".removesuffix(".")
    refusal = ParameterMissing if kind == "missing" else errors.InvalidRequest
    return response_for(refusal(message, param=param))


def _allowed_methods(request: Request) -> str:
    # Starlette names only the methods of the first route matching the path; a URL served
    # by several routes (GET and POST /v1/customers) accepts the methods of all of them.
    # A route spelt out in full wins over one that matches through a path parameter:
    # /v1/ledger/entries/batch is its own resource, not an entry whose id is "batch".
    matching = [
        context for context in iter_route_contexts(request.app.routes) if context.matches(request.scope)[0] is not Match.NONE
    ]
    literal = [context for context in matching if "{" not in (context.path or "{")]
    return ", ".join(sorted({method for context in literal or matching for method in context.methods or ()}))


async def _http_error(request: Request, error: Exception) -> JsonResponse:
    if not isinstance(error, HTTPException):
        raise error
    if error.status_code == 404:
        return response_for(RouteMissing("Unrecognized request URL"))
    if error.status_code == 405:
        allowed = _allowed_methods(request)
        return response_for(MethodNotAllowed(f"Method not allowed on this URL; it accepts {allowed}"), headers={"Allow": allowed})
    return response_for(HttpError(str(error.detail)), status=error.status_code)


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.BastionError, _bastion_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    # Other exceptions become a 500 in `bastion.platform.http.middleware`, inside the edge, so that
    # the response still carries the security headers and the request id.
