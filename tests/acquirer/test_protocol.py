"""The sandbox acquirer's protocol, against a real `bastion acquirer` over HTTPS: test cards
answer as documented, every POST is done once per Idempotency-Key, amounts are bounded, and its
record keeps no card number."""

from typing import Any

import asyncpg
import httpx
import pytest

from bastion.kernel.ids import new_id
from bastion.platform.db import plain_dsn
from tests.support.postgres import ApiProcess, TestDatabase

APPROVED = "4242424242424242"


def _payment(number: str = APPROVED, *, capture: bool = False, amount: int = 1000, **card: str) -> dict[str, Any]:
    return {
        "merchant": "mer_test",
        "reference": new_id("ch"),
        "amount": amount,
        "currency": "EUR",
        "capture": capture,
        "card": {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123", **card},
    }


async def _post(
    client: httpx.AsyncClient, path: str, body: dict[str, Any] | None = None, key: str | None = None
) -> httpx.Response:
    return await client.post(path, json=body or {}, headers={"Idempotency-Key": key or new_id("req")})


@pytest.mark.parametrize(
    ("number", "status", "decline_code"),
    [
        ("4242424242424242", "authorized", None),
        ("5555555555554444", "authorized", None),
        ("378282246310005", "authorized", None),
        ("4000000000000002", "declined", "generic_decline"),
        ("4000000000009995", "declined", "insufficient_funds"),
        ("4000000000009987", "declined", "lost_card"),
        ("4000000000000069", "declined", "expired_card"),
        ("4000000000000127", "declined", "incorrect_cvc"),
        ("4000000000000119", "declined", "processing_error"),
    ],
)
async def test_each_test_card_answers_as_documented(
    client: httpx.AsyncClient, number: str, status: str, decline_code: str | None
) -> None:
    answer = await _post(client, "/v1/payments", _payment(number))
    assert answer.status_code == 200, answer.text
    payment = answer.json()
    assert (payment["status"], payment["decline_code"]) == (status, decline_code)
    assert payment["card_last4"] == number[-4:]
    assert payment["amount_captured"] == 0


async def test_a_card_past_its_expiry_is_declined_whatever_its_number(client: httpx.AsyncClient) -> None:
    payment = (await _post(client, "/v1/payments", _payment(exp_year="2020"))).json()
    assert (payment["status"], payment["decline_code"]) == ("declined", "expired_card")


async def test_authorize_capture_part_refund_twice(client: httpx.AsyncClient) -> None:
    payment = (await _post(client, "/v1/payments", _payment(amount=1000))).json()
    captured = (await _post(client, f"/v1/payments/{payment['id']}/capture", {"amount": 600})).json()
    assert (captured["status"], captured["amount_captured"]) == ("captured", 600)
    first = await _post(client, f"/v1/payments/{payment['id']}/refunds", {"reference": "re_1", "amount": 400})
    assert first.json()["status"] == "succeeded"
    too_much = await _post(client, f"/v1/payments/{payment['id']}/refunds", {"reference": "re_2", "amount": 201})
    assert too_much.status_code == 400
    assert too_much.json()["error"]["param"] == "amount"
    await _post(client, f"/v1/payments/{payment['id']}/refunds", {"reference": "re_2", "amount": 200})
    # The same reference again is the same refund, not a third one.
    again = await _post(client, f"/v1/payments/{payment['id']}/refunds", {"reference": "re_2", "amount": 200})
    assert again.status_code == 200
    final = (await client.get(f"/v1/payments/{payment['id']}")).json()
    assert (final["amount_captured"], final["amount_refunded"]) == (600, 600)


async def test_capture_and_void_only_what_the_status_allows(client: httpx.AsyncClient) -> None:
    payment = (await _post(client, "/v1/payments", _payment(amount=500))).json()
    above = await _post(client, f"/v1/payments/{payment['id']}/capture", {"amount": 501})
    assert (above.status_code, above.json()["error"]["param"]) == (400, "amount")
    voided = await _post(client, f"/v1/payments/{payment['id']}/void")
    assert voided.json()["status"] == "voided"
    late = await _post(client, f"/v1/payments/{payment['id']}/capture", {"amount": 500})
    assert (late.status_code, late.json()["error"]["code"]) == (400, "payment_state_invalid")
    declined = (await _post(client, "/v1/payments", _payment("4000000000000002"))).json()
    refused = await _post(client, f"/v1/payments/{declined['id']}/void")
    assert refused.json()["error"]["code"] == "payment_state_invalid"


async def test_one_key_one_operation(client: httpx.AsyncClient) -> None:
    key = new_id("req")
    body = _payment(capture=True)
    first = (await _post(client, "/v1/payments", body, key)).json()
    second = (await _post(client, "/v1/payments", body, key)).json()
    assert second == first
    other = await _post(client, "/v1/payments", _payment(), key)
    assert (other.status_code, other.json()["error"]["type"]) == (400, "idempotency_error")
    # The reference names one payment: sent again under a new key, it answers the same payment.
    same_reference = (await _post(client, "/v1/payments", body)).json()
    assert same_reference["id"] == first["id"]
    found = await client.get("/v1/payments", params={"merchant": "mer_test", "reference": body["reference"]})
    assert found.json()["id"] == first["id"]


async def test_refused_without_the_secret_or_a_key(acquirer: ApiProcess, client: httpx.AsyncClient) -> None:
    anonymous = await client.post("/v1/payments", json=_payment(), headers={"Authorization": "Bearer wrong"})
    assert anonymous.status_code == 401
    keyless = await client.post("/v1/payments", json=_payment())
    assert keyless.status_code == 400
    assert keyless.json()["error"]["param"] == "Idempotency-Key"
    unknown = await client.get("/v1/payments/acqp_nothing")
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"amount": 0}, "amount"),
        ({"currency": "XXX"}, "currency"),
        ({"card": {"number": "42", "exp_month": "12", "exp_year": "2034"}}, "card[number]"),
        ({"card": {"number": APPROVED, "exp_month": "13", "exp_year": "2034"}}, "card[exp_month]"),
    ],
)
async def test_bad_input_names_the_field(client: httpx.AsyncClient, change: dict[str, Any], param: str) -> None:
    answer = await _post(client, "/v1/payments", {**_payment(), **change})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


async def test_the_record_keeps_no_card_number(client: httpx.AsyncClient, test_database: TestDatabase) -> None:
    await _post(client, "/v1/payments", _payment(capture=True))
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        rows = await connection.fetch(
            "SELECT row_to_json(p)::text AS payment FROM acquirer.payments p UNION ALL SELECT body::text FROM acquirer.requests"
        )
    finally:
        await connection.close()
    assert rows
    assert not any(APPROVED in row["payment"] for row in rows)
