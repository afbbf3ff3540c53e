"""Stripe's `expand`: each object answers the fields it lists with the objects they name, on
retrieve (query) and on commands (body, JSON or form), a replay included; anything else is
refused naming `expand[i]`."""

from typing import Any

import httpx
import pytest

from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess
from tests.support.vault import exchange, token_id

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def _pay(client: httpx.AsyncClient, customer_id: str, payment_method_id: str) -> httpx.Response:
    """30.00 EUR paid at once, every field expanded, sent as a form with the key `pay-1`."""
    body = (
        f"amount=3000&currency=eur&customer={customer_id}&payment_method={payment_method_id}&confirm=true"
        "&expand[0]=customer&expand[1]=payment_method&expand[2]=latest_charge"
    )
    return await client.post("/v1/payment_intents", content=body.encode(), headers={**FORM, "Idempotency-Key": "pay-1"})


@pytest.fixture
async def customer(platform: Platform, merchant: Credentials) -> dict[str, Any]:
    return await platform.create_customer(merchant, email="jenny@example.com")


@pytest.fixture
async def paid(
    acquirer: ApiProcess, platform: Platform, vault: ApiProcess, merchant: Credentials, customer: dict[str, Any]
) -> dict[str, Any]:
    """A captured PaymentIntent of the customer, made with every field expanded, as a form."""
    method = await exchange(platform, merchant, await token_id(vault, merchant), customer=customer["id"])
    assert method.status_code == 200, method.text
    async with platform.client(merchant) as client:
        response = await _pay(client, customer["id"], method.json()["id"])
    assert response.status_code == 200, response.text
    intent: dict[str, Any] = response.json()
    return intent


async def test_a_payment_intent_expands_its_customer_payment_method_and_charge(
    paid: dict[str, Any], platform: Platform, merchant: Credentials, customer: dict[str, Any]
) -> None:
    assert paid["customer"] == customer
    assert paid["payment_method"]["object"] == "payment_method"
    assert paid["latest_charge"]["object"] == "charge"
    assert paid["latest_charge"]["payment_intent"] == paid["id"], "one level: the charge's own ids stay ids"
    async with platform.client(merchant) as client:
        plain = (await client.get(f"/v1/payment_intents/{paid['id']}")).json()
        assert (plain["customer"], plain["payment_method"], plain["latest_charge"]) == (
            customer["id"],
            paid["payment_method"]["id"],
            paid["latest_charge"]["id"],
        )
        retrieved = (await client.get(f"/v1/payment_intents/{paid['id']}?expand[0]=latest_charge")).json()
        assert retrieved["latest_charge"] == {**paid["latest_charge"], "amount_refunded": 0}
        assert retrieved["customer"] == customer["id"]


async def test_other_objects_expand_their_own_fields(
    paid: dict[str, Any], platform: Platform, merchant: Credentials, customer: dict[str, Any]
) -> None:
    charge_id = paid["latest_charge"]["id"]
    async with platform.client(merchant) as client:
        method = (await client.get(f"/v1/payment_methods/{paid['payment_method']['id']}?expand[]=customer")).json()
        assert method["customer"] == customer
        charge = (await client.get(f"/v1/charges/{charge_id}?expand[0]=payment_intent")).json()
        assert charge["payment_intent"]["id"] == paid["id"]
        refund = await client.post(
            "/v1/refunds", json={"payment_intent": paid["id"], "amount": 500, "expand": ["charge", "payment_intent"]}
        )
        assert refund.status_code == 200, refund.text
        assert (refund.json()["charge"]["id"], refund.json()["payment_intent"]["id"]) == (charge_id, paid["id"])
        assert refund.json()["charge"]["amount_refunded"] == 500
        await client.delete(f"/v1/customers/{customer['id']}")
        after = (await client.get(f"/v1/payment_intents/{paid['id']}?expand[0]=customer")).json()
    assert after["customer"] == {"id": customer["id"], "object": "customer", "deleted": True}


async def test_lists_expand_each_object(
    paid: dict[str, Any], platform: Platform, merchant: Credentials, customer: dict[str, Any]
) -> None:
    async with platform.client(merchant) as client:
        intents = (await client.get("/v1/payment_intents?expand[0]=data.customer&expand[1]=data.latest_charge")).json()
        methods = (await client.get(f"/v1/payment_methods?customer={customer['id']}&expand[]=data.customer")).json()
        charges = (await client.get(f"/v1/charges?payment_intent={paid['id']}&expand[0]=data.payment_intent")).json()
        await client.post("/v1/refunds", json={"payment_intent": paid["id"], "amount": 100})
        refunds = (await client.get(f"/v1/refunds?payment_intent={paid['id']}&expand[0]=data.charge")).json()
        plain = (await client.get("/v1/payment_intents")).json()
        refused = await client.get("/v1/payment_intents?expand[0]=customer")
    assert [(item["customer"], item["latest_charge"]["id"]) for item in intents["data"]] == [
        (customer, paid["latest_charge"]["id"])
    ]
    assert [item["customer"] for item in methods["data"]] == [customer]
    assert [item["payment_intent"]["id"] for item in charges["data"]] == [paid["id"]]
    assert [item["charge"]["amount_refunded"] for item in refunds["data"]] == [100]
    assert [item["customer"] for item in plain["data"]] == [customer["id"]]
    assert (refused.status_code, refused.json()["error"]["param"]) == (400, "expand[0]")


async def test_a_replay_is_expanded_too(paid: dict[str, Any], platform: Platform, merchant: Credentials) -> None:
    # The fixture's request again, the same key: the first answer, expanded again.
    async with platform.client(merchant) as client:
        replay = await _pay(client, paid["customer"]["id"], paid["payment_method"]["id"])
    assert replay.status_code == 200, replay.text
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == paid


async def test_a_null_field_stays_null(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        created = await client.post(
            "/v1/payment_intents", json={"amount": 100, "currency": "EUR", "expand": ["customer", "latest_charge"]}
        )
    assert created.status_code == 200, created.text
    assert (created.json()["customer"], created.json()["latest_charge"]) == (None, None)


@pytest.mark.parametrize(
    ("request_line", "param"),
    [
        ("GET /v1/payment_intents/{intent}?expand[0]=invoice", "expand[0]"),
        ("GET /v1/payment_intents/{intent}?expand[0]=customer&expand[1]=latest_charge.customer", "expand[1]"),
        ("GET /v1/charges/ch_01M00000000000000000000000?expand[0]=customer", "expand[0]"),
        ("POST /v1/payment_intents/{intent}", "expand[0]"),
        ("POST /v1/payment_intents/{intent}/cancel", "expand"),
    ],
)
async def test_a_field_an_object_does_not_expand_is_named(
    platform: Platform, merchant: Credentials, request_line: str, param: str
) -> None:
    async with platform.client(merchant) as client:
        intent = (await client.post("/v1/payment_intents", json={"amount": 100, "currency": "EUR"})).json()
        method, url = request_line.format(intent=intent["id"]).split(" ")
        if method == "GET":
            response = await client.get(url)
        elif url.endswith("/cancel"):
            response = await client.post(url, json={"expand": ["customer"] * 5})
        else:
            response = await client.post(url, json={"expand": ["refunds"]})
        after = (await client.get(f"/v1/payment_intents/{intent['id']}")).json()
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert after["status"] == "requires_payment_method", "nothing is written"
