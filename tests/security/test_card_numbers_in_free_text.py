"""No card number is stored in free text (issue 12, item 3): every free-text field of the API
(names, descriptions, references, codes, sources, metadata keys and values) refuses a
Luhn-valid run of 12 to 19 digits, with or without spaces or dashes, with `400
parameter_invalid` naming the field; nothing is written and nothing of it is logged. The
routes are checked one by one, and the document is walked so that a new free-text field
cannot be added without its row here."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bastion.platform.http.schemas import without_card_numbers
from tests.support.platform import Credentials, Platform

CARD = "4242424242424242"
WRITTEN = (CARD, "4242 4242 4242 4242", "4242-4242-4242-4242", f"order {CARD} paid")
# The forms that fit a statement descriptor's 22 characters.
SHORT = WRITTEN[:3]
ACCOUNT = "la_01M00000000000000000000000"
INTENT = "pi_01M00000000000000000000000"
HOOK = "https://hooks.example.com/bastion"
ROUTING_RULES = {"rules": [], "default": ["ca_01M00000000000000000000000"]}
SPLIT = {"type": "volume_split", "splits": [{"connector_account": "ca_01M00000000000000000000000", "percent": 100}]}
# A create needs the required fields beside the one tried; an update needs none.
WEBHOOK_ENDPOINT_BODIES = (
    ("/v1/webhook_endpoints", {"url": HOOK, "enabled_events": ["*"]}),
    ("/v1/webhook_endpoints/{endpoint_id}", {}),
)
DISPUTE = "dp_01M00000000000000000000000"
EVIDENCE = (
    "product_description",
    "customer_name",
    "customer_email_address",
    "billing_address",
    "shipping_tracking_number",
    "refund_refusal_explanation",
    "uncategorized_text",
)


def _entry(**fields: Any) -> dict[str, Any]:
    postings = [
        {"account": ACCOUNT, "direction": "debit", "amount_minor": 100, "currency": "EUR"},
        {"account": ACCOUNT, "direction": "credit", "amount_minor": 100, "currency": "EUR"},
    ]
    return {"postings": postings, **fields}


def _fx(source: str) -> dict[str, Any]:
    return {"from_currency": "EUR", "to_currency": "USD", "rate": "1.1", "source": source, "quoted_at": 1_700_000_000}


Body = Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class Field:
    method: str
    path: str
    param: str  # as the error names it
    body: Body  # a request carrying the text in that field
    # Account codes take no spaces: the digits alone.
    forms: tuple[str, ...] = WRITTEN


def _payment_method(metadata: dict[str, str]) -> dict[str, Any]:
    return {"type": "card", "card": {"token": "tok_x"}, "metadata": metadata}


def _intent(**fields: Any) -> dict[str, Any]:
    return {"amount": 100, "currency": "EUR", **fields}


def _account(**fields: Any) -> dict[str, Any]:
    return {"currency": "EUR", "type": "asset", **fields}


FREE_TEXT = [
    Field("POST", "/v1/customers", "name", lambda text: {"name": text}),
    Field("POST", "/v1/customers", "description", lambda text: {"description": text}),
    Field("POST", "/v1/customers", "metadata[note]", lambda text: {"metadata": {"note": text}}),
    Field("POST", "/v1/customers", "metadata", lambda text: {"metadata": {text: "x"}}),
    Field("POST", "/v1/customers/{customer}", "name", lambda text: {"name": text}),
    Field("POST", "/v1/customers/{customer}", "description", lambda text: {"description": text}),
    Field("POST", "/v1/customers/{customer}", "metadata[note]", lambda text: {"metadata": {"note": text}}),
    Field("POST", "/v1/customers/{customer}", "metadata", lambda text: {"metadata": {text: "x"}}),
    Field("POST", "/v1/payment_methods", "metadata[note]", lambda text: _payment_method({"note": text})),
    Field("POST", "/v1/payment_methods", "metadata", lambda text: _payment_method({text: "x"})),
    Field("POST", "/v1/ledger/accounts", "name", lambda text: _account(name=text)),
    Field("POST", "/v1/ledger/accounts", "code", lambda text: _account(code=text), forms=(CARD,)),
    Field("POST", "/v1/ledger/accounts", "metadata[note]", lambda text: _account(metadata={"note": text})),
    Field("POST", "/v1/ledger/entries", "reference", lambda text: _entry(reference=text)),
    Field("POST", "/v1/ledger/entries", "description", lambda text: _entry(description=text)),
    Field("POST", "/v1/ledger/entries", "metadata[note]", lambda text: _entry(metadata={"note": text})),
    Field("POST", "/v1/ledger/entries", "fx[source]", lambda text: _entry(fx=_fx(text))),
    Field("POST", "/v1/ledger/entries/batch", "entries[0][description]", lambda text: {"entries": [_entry(description=text)]}),
    Field("POST", "/v1/ledger/entries/batch", "entries[0][reference]", lambda text: {"entries": [_entry(reference=text)]}),
    Field(
        "POST",
        "/v1/ledger/entries/batch",
        "entries[0][metadata][note]",
        lambda text: {"entries": [_entry(metadata={"note": text})]},
    ),
    Field("POST", "/v1/ledger/entries/batch", "entries[0][fx][source]", lambda text: {"entries": [_entry(fx=_fx(text))]}),
    Field("POST", "/v1/ledger/entries/{entry}/reverse", "description", lambda text: {"description": text}),
    Field("POST", "/v1/payment_intents", "description", lambda text: _intent(description=text)),
    Field("POST", "/v1/payment_intents", "statement_descriptor", lambda text: _intent(statement_descriptor=text), forms=SHORT),
    Field("POST", "/v1/payment_intents", "metadata[note]", lambda text: _intent(metadata={"note": text})),
    Field("POST", "/v1/payment_intents", "metadata", lambda text: _intent(metadata={text: "x"})),
    Field("POST", "/v1/payment_intents/{intent_id}", "description", lambda text: {"description": text}),
    Field(
        "POST",
        "/v1/payment_intents/{intent_id}",
        "statement_descriptor",
        lambda text: {"statement_descriptor": text},
        forms=SHORT,
    ),
    Field("POST", "/v1/payment_intents/{intent_id}", "metadata[note]", lambda text: {"metadata": {"note": text}}),
    Field("POST", "/v1/payment_intents/{intent_id}", "metadata", lambda text: {"metadata": {text: "x"}}),
    Field("POST", "/v1/refunds", "metadata[note]", lambda text: {"payment_intent": INTENT, "metadata": {"note": text}}),
    Field("POST", "/v1/refunds", "metadata", lambda text: {"payment_intent": INTENT, "metadata": {text: "x"}}),
    *(
        Field("POST", "/v1/disputes/{dispute_id}", f"evidence[{name}]", lambda text, name=name: {"evidence": {name: text}})
        for name in EVIDENCE
    ),
    Field("POST", "/v1/disputes/{dispute_id}", "metadata[note]", lambda text: {"metadata": {"note": text}}),
    Field("POST", "/v1/disputes/{dispute_id}", "metadata", lambda text: {"metadata": {text: "x"}}),
    Field("POST", "/v1/risk/rulesets", "rules[0][rule]", lambda text: {"rules": [{"rule": f"block if :card_bin: = '{text}'"}]}),
    Field("POST", "/v1/risk/rulesets", "description", lambda text: {"rules": [], "description": text}),
    Field("POST", "/v1/risk/lists", "name", lambda text: {"alias": "watch", "name": text, "item_type": "email"}),
    Field("POST", "/v1/risk/lists/{list_id}/items", "value", lambda text: {"value": text}),
    *(
        Field(method, path, param, body)
        for path, needed in (
            ("/v1/webhook_endpoints", {"url": HOOK, "enabled_events": ["*"]}),
            ("/v1/webhook_endpoints/{endpoint_id}", {}),
        )
        for method, param, body in (
            ("POST", "url", lambda text, needed=needed: needed | {"url": f"{HOOK}?card={text}"}),
            ("POST", "enabled_events[0]", lambda text, needed=needed: needed | {"enabled_events": [text]}),
            ("POST", "description", lambda text, needed=needed: needed | {"description": text}),
            ("POST", "metadata[note]", lambda text, needed=needed: needed | {"metadata": {"note": text}}),
            ("POST", "metadata", lambda text, needed=needed: needed | {"metadata": {text: "x"}}),
        )
    ),
    *(
        Field(method, path, param, body)
        for path, needed in (
            ("/v1/connector_accounts", {"connector": "sandbox"}),
            ("/v1/connector_accounts/{account_id}", {}),
        )
        for method, param, body in (
            ("POST", "label", lambda text, needed=needed: needed | {"label": text}),
            ("POST", "metadata[note]", lambda text, needed=needed: needed | {"metadata": {"note": text}}),
            ("POST", "metadata", lambda text, needed=needed: needed | {"metadata": {text: "x"}}),
        )
    ),
    Field(
        "POST",
        "/v1/connector_accounts",
        "base_url",
        lambda text: {"connector": "sandbox", "base_url": f"https://acquirer.example.com?card={text}"},
    ),
    Field(
        "POST",
        "/v1/routing_rules",
        "rules[0][condition]",
        lambda text: ROUTING_RULES | {"rules": [{"condition": f":card_country: = '{text}'", "strategy": SPLIT}]},
    ),
    Field("POST", "/v1/routing_rules", "description", lambda text: ROUTING_RULES | {"description": text}),
    Field("POST", "/v1/routing_rules", "metadata[note]", lambda text: ROUTING_RULES | {"metadata": {"note": text}}),
    Field("POST", "/v1/routing_rules", "metadata", lambda text: ROUTING_RULES | {"metadata": {text: "x"}}),
]


async def _path(platform: Platform, merchant: Credentials, template: str) -> str:
    if "{customer}" in template:
        customer = await platform.create_customer(merchant, name="Ada")
        return template.replace("{customer}", customer["id"])
    return (
        template.replace("{entry}", "le_01M00000000000000000000000")
        .replace("{intent_id}", INTENT)
        .replace("{dispute_id}", DISPUTE)
        .replace("{list_id}", "rsl_01M00000000000000000000000")
        .replace("{endpoint_id}", "we_01M00000000000000000000000")
        .replace("{account_id}", "ca_01M00000000000000000000000")
    )


async def _written(platform: Platform, merchant: Credentials) -> dict[str, int]:
    async with platform.owner.transaction() as connection:
        return {
            table: await connection.fetchval(f"SELECT count(*) FROM {table} WHERE merchant_id = $1", merchant.merchant_id)
            for table in (
                "customers",
                "payment_intents",
                "refunds",
                "ledger_accounts",
                "ledger_entries",
                "audit_events",
                "events",
                "risk_rulesets",
                "risk_lists",
                "risk_list_items",
                "webhook_endpoints",
                "connector_accounts",
                "routing_rules",
            )
        }


@pytest.mark.parametrize("field", FREE_TEXT, ids=lambda field: f"{field.path} {field.param}")
async def test_a_card_number_in_free_text_is_refused_naming_the_field(
    platform: Platform, merchant: Credentials, capfd: pytest.CaptureFixture[str], field: Field
) -> None:
    url = await _path(platform, merchant, field.path)
    before = await _written(platform, merchant)
    async with platform.client(merchant) as client:
        answers = [await client.request(field.method, url, json=field.body(text)) for text in field.forms]
    for text, answer in zip(field.forms, answers, strict=True):
        assert answer.status_code == 400, (text, answer.text)
        error = answer.json()["error"]
        assert (error["code"], error["param"]) == ("parameter_invalid", field.param), answer.text
        assert "card number" in error["message"]
        assert "vault" in error["message"]
        assert "4242" not in answer.text
    assert await _written(platform, merchant) == before, "nothing written"
    logged = capfd.readouterr()
    assert "4242" not in logged.out + logged.err, "nothing of it logged"


@pytest.mark.parametrize(
    "text",
    ["order 12345", "+44 20 7946 0958", "2026-12-05", "invoice 123456789012345", "4242424242424241", "ref 1234-5678-9012"],
)
def test_text_with_numbers_that_are_not_card_numbers_is_taken(text: str) -> None:
    assert without_card_numbers(text) == text


def _free_text_fields(node: Any, components: dict[str, Any], path: str, found: set[str], seen: frozenset[str]) -> None:
    """The fields of a request body that take free text: strings with no pattern, enum or
    format of their own (beyond the edge's no-NUL pattern), and metadata maps."""
    if not isinstance(node, dict):
        return
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            _free_text_fields(components[name], components, path, found, seen | {name})
        return
    for alternative in node.get("anyOf", []) + node.get("allOf", []):
        _free_text_fields(alternative, components, path, found, seen)
    plain_string = node.get("type") == "string" and not {"enum", "const", "format"} & node.keys()
    if plain_string and node.get("pattern") in (None, "^[^\\u0000]*$"):
        found.add(path)
    if node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        found.add(f"{path}[*]")
    for name, child in node.get("properties", {}).items():
        _free_text_fields(child, components, f"{path}[{name}]" if path else name, found, seen)
    if isinstance(node.get("items"), dict):
        _free_text_fields(node["items"], components, f"{path}[0]", found, seen)


def test_every_free_text_field_of_the_document_is_checked_here(platform: Platform) -> None:
    document = platform.app.openapi()
    components = document["components"]["schemas"]
    documented: set[tuple[str, str, str]] = set()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            found: set[str] = set()
            _free_text_fields(schema, components, "", found, frozenset())
            documented |= {(method.upper(), path, field) for field in found}
    checked = set()
    for field in FREE_TEXT:
        template = field.path.replace("{customer}", "{customer_id}").replace("{entry}", "{entry_id}")
        checked.add((field.method, template, re.sub(r"\[note\]$", "[*]", field.param)))
    unchecked = {row for row in documented if row not in checked and not row[2].endswith("[token]")}
    assert unchecked == set(), "a free-text field without a row in FREE_TEXT"
