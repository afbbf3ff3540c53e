"""Shapes shared by every route: free text without card numbers, metadata limits, and the
error body (ADR 11)."""

from typing import Annotated, Any, NotRequired, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema
from typing_extensions import TypedDict

from bastion.kernel.ids import id_pattern
from bastion.kernel.money import CURRENCIES
from bastion.platform.redaction import card_numbers_in

T = TypeVar("T", str, str | None)

_CARD_NUMBER_REFUSAL = (
    "looks like a card number (a Luhn-valid run of 12 to 19 digits); card numbers go to the vault "
    "through the card fields, never in free text"
)


def without_card_numbers(value: T) -> T:
    """Free text as it may be stored: refused when it holds a card number, with or without
    spaces or dashes (the same detection as log redaction)."""
    if value is not None and any(card_numbers_in(value)):
        raise ValueError(_CARD_NUMBER_REFUSAL)
    return value


# The last item of every free-text field of a request (names, descriptions, references,
# metadata): a card number there would be stored, logged and sent in events outside the vault.
FREE_TEXT = AfterValidator(without_card_numbers)


def _metadata_keys_without_card_numbers(value: object) -> object:
    # Keys are checked before the values, and named by `metadata` alone: a field named after
    # a key would put the card number in the error's `param`.
    if isinstance(value, dict) and any(isinstance(key, str) and any(card_numbers_in(key)) for key in value):
        raise ValueError(f"a key {_CARD_NUMBER_REFUSAL}")
    return value


METADATA_KEYS_MAX = 50
METADATA_KEY_LENGTH_MAX = 40
METADATA_VALUE_LENGTH_MAX = 500


def checked_metadata(value: dict[str, T]) -> dict[str, T]:
    """Stripe's metadata limits on keys, for every object that carries metadata (the
    values' length is checked by their type)."""
    if len(value) > METADATA_KEYS_MAX:
        raise ValueError(f"at most {METADATA_KEYS_MAX} keys")
    if any(not 1 <= len(key) <= METADATA_KEY_LENGTH_MAX for key in value):
        raise ValueError(f"keys must be 1 to {METADATA_KEY_LENGTH_MAX} characters")
    if any(bracket in key for key in value for bracket in "[]"):
        # As Stripe's: a key is written `metadata[key]` in form bodies and in errors' `param`.
        raise ValueError("keys must not contain [ or ]")
    return value


_METADATA_KEYS = {
    "maxProperties": METADATA_KEYS_MAX,
    "propertyNames": {"type": "string", "minLength": 1, "maxLength": METADATA_KEY_LENGTH_MAX, "pattern": r"^[^\[\]\u0000]*$"},
}
_MetadataValue = Annotated[str, StringConstraints(max_length=METADATA_VALUE_LENGTH_MAX), FREE_TEXT]
_NO_CARD_NUMBER_KEYS = BeforeValidator(_metadata_keys_without_card_numbers)
# Up to 50 pairs of strings a merchant attaches to an object.
Metadata = Annotated[
    dict[str, _MetadataValue],
    _NO_CARD_NUMBER_KEYS,
    AfterValidator(checked_metadata),
    Field(json_schema_extra=_METADATA_KEYS),
]
# The same, where a value of null (or "") removes that key (Stripe's update rule, also taken on create).
MetadataChanges = Annotated[
    dict[str, _MetadataValue | None],
    _NO_CARD_NUMBER_KEYS,
    AfterValidator(checked_metadata),
    Field(json_schema_extra=_METADATA_KEYS),
]


# Floats are exact integers up to here: a larger one may not be the number the client wrote.
_EXACT_FLOAT_MAX = 2**53


def _whole(value: object) -> object:
    if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT_FLOAT_MAX:
        return int(value)
    return value


# The last item of every integer of a request body, after its bounds (`Annotated[int,
# Field(ge=...), WHOLE]`, so that the bounds stay in the document). JSON Schema's `integer`
# includes 3005.0, which strict models refuse: such a number is taken as the integer it is,
# as long as a float holds it exactly.
WHOLE = BeforeValidator(_whole)


def _known_currency(value: str) -> str:
    if value.upper() not in CURRENCIES or value not in (value.upper(), value.lower()):
        raise ValueError("must be an ISO 4217 currency code with a minor unit, like EUR")
    return value.upper()


# A currency, as every request takes it: the ISO 4217 codes the server knows, listed in the
# document, in capitals or, as Stripe's SDKs send them, in small letters; answers spell it in capitals.
Currency = Annotated[
    str,
    AfterValidator(_known_currency),
    WithJsonSchema({"type": "string", "enum": sorted(CURRENCIES) + sorted(code.lower() for code in CURRENCIES)}),
]


def id_schema(prefix: str) -> dict[str, Any]:
    """What the OpenAPI document says of an id wherever it is taken (path, query or body):
    its pattern. The server answers a malformed id as it answers an unknown one, with
    `resource_missing` naming the field, as Stripe does; so the pattern is documented
    (`json_schema_extra`) rather than checked by the framework, whose refusal would be a
    `parameter_invalid`."""
    return {"pattern": id_pattern(prefix)}


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


# JSON Schema's pattern for text without NUL, which the edge refuses in any request (PostgreSQL
# cannot store it; `platform/http/middleware.py`).
_WITHOUT_NUL = "^[^\\u0000]*$"


def state_text_without_nul(document: dict[str, Any]) -> None:
    """Say in the OpenAPI `document` that no text a request carries may hold NUL: every string
    schema of a parameter or request body without a pattern or enum of its own gets one."""
    components: dict[str, Any] = document.get("components", {}).get("schemas", {})
    visited: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item)
            return
        if not isinstance(node, dict):
            return
        reference = node.get("$ref")
        if isinstance(reference, str):
            name = reference.rsplit("/", 1)[-1]
            if name not in visited:
                visited.add(name)
                visit(components[name])
            return
        if node.get("type") == "string" and not {"pattern", "enum", "const"} & node.keys():
            node["pattern"] = _WITHOUT_NUL
        for value in node.values():
            visit(value)

    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                visit(parameter.get("schema"))
            visit(operation.get("requestBody"))
