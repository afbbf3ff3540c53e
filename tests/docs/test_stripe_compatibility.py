"""docs/stripe-compatibility.md stays true to the server: every path it lists is served with its
method, and its table of expandable fields is the one the request schemas take."""

import re
from pathlib import Path
from typing import Any

from tests.support.platform import Platform

DOC = Path(__file__).parents[2] / "docs" / "stripe-compatibility.md"
_PATH_ROW = re.compile(r"^\| `(GET|POST|DELETE) (/v1/[^`]+)` \|", re.MULTILINE)
_EXPAND_ROW = re.compile(r"^\| `(\w+)` \| ((?:`\w+`(?:, )?)+) \| ([a-z, ]+) \|$", re.MULTILINE)
# The operations of the expand table, by object and the name the table gives them.
_OPERATIONS = {
    "payment_intent": {
        "create": ("post", "/v1/payment_intents"),
        "retrieve": ("get", "/v1/payment_intents/{intent_id}"),
        "update": ("post", "/v1/payment_intents/{intent_id}"),
        "confirm": ("post", "/v1/payment_intents/{intent_id}/confirm"),
        "capture": ("post", "/v1/payment_intents/{intent_id}/capture"),
        "cancel": ("post", "/v1/payment_intents/{intent_id}/cancel"),
        "list": ("get", "/v1/payment_intents"),
    },
    "payment_method": {
        "create": ("post", "/v1/payment_methods"),
        "retrieve": ("get", "/v1/payment_methods/{payment_method_id}"),
        "list": ("get", "/v1/payment_methods"),
    },
    "charge": {"retrieve": ("get", "/v1/charges/{charge_id}"), "list": ("get", "/v1/charges")},
    "refund": {
        "create": ("post", "/v1/refunds"),
        "retrieve": ("get", "/v1/refunds/{refund_id}"),
        "list": ("get", "/v1/refunds"),
    },
}


async def _document(platform: Platform) -> dict[str, Any]:
    async with platform.client() as client:
        document: dict[str, Any] = (await client.get("/openapi.json")).json()
    return document


def _template(path: str) -> str:
    return re.sub(r"\{[a-z_]+\}", "{}", path)


async def test_every_documented_path_is_served(platform: Platform) -> None:
    document = await _document(platform)
    served = {(method.upper(), _template(path)) for path, item in document["paths"].items() for method in item}
    documented = {(method, _template(path)) for method, path in _PATH_ROW.findall(DOC.read_text())}
    assert len(documented) >= 30, documented
    assert sorted(documented - served) == []


def _expansions(document: dict[str, Any], method: str, path: str) -> set[str]:
    operation = document["paths"][path][method]
    if method == "get":
        (parameter,) = [parameter for parameter in operation["parameters"] if parameter["name"] == "expand"]
        schema = parameter["schema"]["anyOf"][0]
    else:
        reference = operation["requestBody"]["content"]["application/json"]["schema"]
        if "anyOf" in reference:  # an optional body
            reference = reference["anyOf"][0]
        body = document["components"]["schemas"][reference["$ref"].rpartition("/")[2]]
        schema = body["properties"]["expand"]
    items = schema["items"]
    # A single field is a `const`.
    return set(items["enum"]) if "enum" in items else {items["const"]}


async def test_the_expand_table_is_what_the_operations_take(platform: Platform) -> None:
    document = await _document(platform)
    rows = _EXPAND_ROW.findall(DOC.read_text())
    assert {row[0] for row in rows} == set(_OPERATIONS)
    for name, fields, operations in rows:
        expected = set(re.findall(r"`(\w+)`", fields))
        assert set(operations.split(", ")) == set(_OPERATIONS[name]), name
        for operation in operations.split(", "):
            # A list names its objects' fields `data.<field>`.
            spelt = {f"data.{field}" for field in expected} if operation == "list" else expected
            assert _expansions(document, *_OPERATIONS[name][operation]) == spelt, (name, operation)
