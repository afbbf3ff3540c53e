"""Schemathesis over the whole OpenAPI document of a real `bastion api` process: every
operation, with valid and with invalid inputs, must answer without a 5xx and exactly as
documented (status code, content type, body); a request valid by the document is never
refused for its shape; and every path's `Allow` lists exactly its documented methods.

The operations are read from the served document at run time, so a new route is covered
without touching this file. Request bodies go both as JSON and form-encoded, as Stripe's SDKs
send them (docs/stripe-compatibility.md). (schemathesis' own lazy pytest loader does not run on
pytest 9.2, hence the explicit loop over operations.)
"""

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bastion.kernel.money import AMOUNT_MINOR_MAX
from bastion.platform.redaction import card_numbers_in
from tests.support import postgres
from tests.support.platform import Credentials, Platform

EXAMPLES_PER_OPERATION_MAX = 15
REQUEST_TIMEOUT_S = 10
# The codes of a refusal of the request's shape (docs/api.md). Any other 4xx is a rule of the
# server's that no schema can state (an unbalanced entry, an unknown account, a used token).
SHAPE_CODES = frozenset(
    {"parameter_invalid", "parameter_missing", "parameter_unknown", "body_missing", "body_invalid", "body_invalid_json"}
)


def accepts_what_the_schema_allows(_ctx: Any, response: Any, case: schemathesis.Case[Any]) -> bool | None:
    """Schemathesis' positive-data acceptance, narrowed to the shape: a request that the
    document says is valid is never refused as malformed."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code not in (400, 415):
        return None
    if _beyond_64_bits(case.body):
        # The generator reads integer bounds as 64-bit floats, so it draws up to 2^63 + 2^10 for
        # `maximum: 2^63-1` (9223372036854775999): not valid by the document, rightly refused.
        return None
    if _holds_a_card_number(case.body):
        # Free text refuses card numbers (a Luhn check, which no JSON Schema can state; docs/api.md).
        return None
    code = response.json()["error"]["code"]
    if code in SHAPE_CODES or response.status_code == 415:
        raise AssertionError(f"valid by the document, refused as {code}: {response.text}")
    return None


def _holds_a_card_number(value: object) -> bool:
    if isinstance(value, dict):
        return any(_holds_a_card_number(item) for pair in value.items() for item in pair)
    if isinstance(value, list):
        return any(_holds_a_card_number(item) for item in value)
    return isinstance(value, str) and any(card_numbers_in(value))


def _beyond_64_bits(value: object) -> bool:
    if isinstance(value, dict):
        return any(_beyond_64_bits(item) for item in value.values())
    if isinstance(value, list):
        return any(_beyond_64_bits(item) for item in value)
    return isinstance(value, int) and not -(2**63) <= value <= AMOUNT_MINOR_MAX


def _bracket_pairs(value: object, name: str) -> list[tuple[str, str]]:
    """`value` as Stripe's bracket encoding spells it under `name`: null, an empty object and an
    empty array as `name=` (Stripe's "unset")."""
    if isinstance(value, dict) and value:
        return [pair for key, item in value.items() for pair in _bracket_pairs(item, f"{name}[{key}]")]
    if isinstance(value, list) and value:
        return [pair for index, item in enumerate(value) for pair in _bracket_pairs(item, f"{name}[{index}]")]
    if isinstance(value, bool):
        return [(name, "true" if value else "false")]
    if value is None or isinstance(value, dict | list):
        return [(name, "")]
    return [(name, str(value))]


@schemathesis.serializer("application/x-www-form-urlencoded")
def _stripe_form(ctx: schemathesis.SerializationContext, _value: object) -> bytes:
    # The case's own body: what schemathesis hands a serializer has its values spelt already
    # (null as "null"), the way OpenAPI's form style writes them, not Stripe's.
    value = ctx.case.body
    if not isinstance(value, dict):
        # A negative case's body that is no object at all: sent as its text.
        return str(value).encode()
    return urlencode([pair for key, item in value.items() for pair in _bracket_pairs(item, str(key))]).encode()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    accepts_what_the_schema_allows,
]


@pytest.fixture(scope="module")
async def schemathesis_merchant(platform: Platform) -> Credentials:
    return await platform.merchant()


@pytest.fixture(scope="module")
def api_url(test_database: postgres.TestDatabase) -> Iterator[str]:
    with postgres.running_api(test_database) as url:
        yield url


@pytest.fixture(scope="module")
def api_schema(api_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{api_url}/openapi.json", timeout=REQUEST_TIMEOUT_S)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi(
    api_schema: schemathesis.BaseSchema, schemathesis_merchant: Credentials, mode: schemathesis.GenerationMode
) -> None:
    failures: dict[str, str] = {}
    labels: list[str] = []
    for result in api_schema.get_all_operations():
        if isinstance(result, Err):
            failures[result.err().label] = f"invalid OpenAPI definition: {result.err()}"
            continue
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION_MAX,
            deadline=None,
            derandomize=True,
            # No shrinking: each step is a real request, and the report already names the failing case.
            phases=[Phase.explicit, Phase.generate],
            # Response times depend on a shared machine and database, not on the generated data.
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def exercise(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(headers=schemathesis_merchant.headers, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)

        try:
            exercise()
        except Unsatisfiable:
            # Only an operation without inputs (GET /healthz) has no invalid request to send.
            if mode is schemathesis.GenerationMode.POSITIVE or _takes_input(operation):
                failures[operation.label] = f"no {mode.value} request could be generated"
        # Schemathesis raises its check failures as an exception group, not an Exception.
        except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001  (collect every operation's failure, report all)
            failures[operation.label] = str(error)
    assert "POST /v1/customers" in labels, labels
    assert not failures, "\n\n".join(f"{label}:\n{message}" for label, message in failures.items())


@pytest.mark.slow
def test_allow_lists_exactly_the_documented_methods(api_schema: schemathesis.BaseSchema, api_url: str) -> None:
    """OPTIONS on every path answers 405 with the methods the document gives that path
    (RFC 9110), also where a literal path looks like a parameterised one's
    (/v1/ledger/entries/batch beside /v1/ledger/entries/{entry_id})."""
    document = api_schema.raw_schema
    wrong = {}
    with httpx.Client(base_url=api_url, timeout=REQUEST_TIMEOUT_S) as client:
        for path, item in document["paths"].items():
            documented = {method.upper() for method in item} & {"GET", "POST", "DELETE", "PUT", "PATCH"}
            concrete = path.replace("{", "").replace("}", "")
            response = client.options(concrete)
            allowed = {method.strip() for method in response.headers.get("allow", "").split(",") if method.strip()}
            if (response.status_code, allowed) != (405, documented):
                wrong[path] = (response.status_code, sorted(allowed), sorted(documented))
    assert "/v1/ledger/entries/batch" in document["paths"]
    assert not wrong, wrong


def _takes_input(operation: "schemathesis.APIOperation[Any, Any, Any, Any]") -> bool:
    """Whether the operation has a parameter (path, query, header, cookie) or a request body."""
    return any(True for _ in operation.iter_parameters()) or bool(operation.get_request_payload_content_types())
