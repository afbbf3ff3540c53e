"""The published OpenAPI document states the rules the server checks (docs/api.md, "What
the OpenAPI document states"); schemathesis then holds the server to it."""

from typing import Any

from bastion.kernel.ids import id_pattern
from bastion.kernel.money import CURRENCIES
from tests.support.ledger import create_account, transfer
from tests.support.platform import Credentials, Platform


async def _document(platform: Platform) -> dict[str, Any]:
    async with platform.client() as client:
        document: dict[str, Any] = (await client.get("/openapi.json")).json()
    return document


def _strings(node: Any, components: dict[str, Any], seen: set[str]) -> list[dict[str, Any]]:
    """Every string schema reachable from `node`, following references once."""
    if isinstance(node, list):
        return [found for item in node for found in _strings(item, components, seen)]
    if not isinstance(node, dict):
        return []
    reference = node.get("$ref")
    if isinstance(reference, str):
        name = reference.rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen.add(name)
        return _strings(components[name], components, seen)
    own = [node] if node.get("type") == "string" else []
    return own + [found for value in node.values() for found in _strings(value, components, seen)]


async def test_every_id_parameter_has_its_pattern(platform: Platform) -> None:
    document = await _document(platform)
    patterns = {}
    for path, item in document["paths"].items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"].endswith("_id") or parameter["name"] in {
                    "starting_after",
                    "ending_before",
                    "customer",
                    "account",
                }:
                    patterns[(path, parameter["name"])] = parameter["schema"].get("pattern") or parameter["schema"]["anyOf"][
                        0
                    ].get("pattern")
    assert patterns[("/v1/customers/{customer_id}", "customer_id")] == id_pattern("cus")
    assert patterns[("/v1/customers", "starting_after")] == id_pattern("cus")
    assert patterns[("/v1/ledger/entries", "account")] == id_pattern("la")
    assert patterns[("/v1/ledger/accounts/{account_id}/statement", "starting_after")] == id_pattern("le")
    assert all(pattern and pattern.startswith("^") for pattern in patterns.values()), patterns


async def test_currencies_are_the_servers_and_no_request_text_may_hold_nul(platform: Platform) -> None:
    document = await _document(platform)
    components = document["components"]["schemas"]
    account = components["AccountCreate"]["properties"]["currency"]
    # Also in small letters, as Stripe's SDKs send them (docs/stripe-compatibility.md).
    assert set(account["enum"]) == CURRENCIES | {code.lower() for code in CURRENCIES}
    requests = [
        found
        for item in document["paths"].values()
        for operation in item.values()
        for found in _strings(
            [operation.get("requestBody"), [p["schema"] for p in operation.get("parameters", [])]], components, set()
        )
    ]
    assert len(requests) > 20
    unbounded = [schema for schema in requests if not {"pattern", "enum", "const"} & schema.keys()]
    assert unbounded == []
    metadata = components["CustomerCreate"]["properties"]["metadata"]
    assert (metadata["maxProperties"], metadata["propertyNames"]["maxLength"]) == (50, 40)


async def test_a_whole_number_written_as_a_float_is_that_integer(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        cash, wallet = await create_account(client), await create_account(client, type="liability")
        body = transfer(cash, wallet, 100)
        body["postings"][0]["amount_minor"] = body["postings"][1]["amount_minor"] = 100.0
        posted = await client.post("/v1/ledger/entries", json=body)
        assert posted.status_code == 200, posted.text
        assert [p["amount_minor"] for p in posted.json()["postings"]] == [100, 100]
        body["postings"][0]["amount_minor"] = body["postings"][1]["amount_minor"] = 100.5
        refused = await client.post("/v1/ledger/entries", json=body)
        assert (refused.status_code, refused.json()["error"]["param"]) == (400, "postings[0][amount_minor]")
        # Beyond 2^53 a float may not be the number the client wrote: refused, not rounded.
        body["postings"][0]["amount_minor"] = body["postings"][1]["amount_minor"] = float(2**53 + 2)
        assert (await client.post("/v1/ledger/entries", json=body)).status_code == 400


async def test_a_literal_path_is_not_taken_for_a_parameter(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        response = await client.options("/v1/ledger/entries/batch")
    assert (response.status_code, response.headers["allow"]) == (405, "POST")
