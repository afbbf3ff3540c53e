"""Refunds through the API, the sandbox acquirer and the ledger: all that is left by default,
several partial ones, never more than captured (also under 50 concurrent requests), refused
before capture, and the books and the acquirer's record agreeing after."""

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest

from bastion.platform.db import plain_dsn
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import exchange, token_id

CONCURRENT = 50


@pytest.fixture
async def paid(acquirer: ApiProcess, platform: Platform, vault: ApiProcess, merchant: Credentials) -> dict[str, Any]:
    """A PaymentIntent of 30.00 EUR, captured."""
    method = await exchange(platform, merchant, await token_id(vault, merchant))
    async with platform.client(merchant) as client:
        body = {"amount": 3000, "currency": "EUR", "payment_method": method.json()["id"], "confirm": True}
        response = await client.post("/v1/payment_intents", json=body)
    assert response.status_code == 200, response.text
    intent: dict[str, Any] = response.json()
    return intent


async def _refund(platform: Platform, merchant: Credentials, **body: Any) -> httpx.Response:
    async with platform.client(merchant) as client:
        return await client.post("/v1/refunds", json=body)


async def _owner_value(test_database: TestDatabase, query: str, *args: Any) -> Any:
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


async def _available(test_database: TestDatabase, merchant: Credentials) -> int:
    value = await _owner_value(
        test_database,
        "SELECT sum(b.credits_posted - b.debits_posted) FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id "
        "WHERE a.merchant_id = $1 AND a.code = 'payments.balance_available.EUR'",
        merchant.merchant_id,
    )
    return int(value)


async def test_a_refund_takes_all_that_is_left_by_default(
    paid: dict[str, Any], platform: Platform, merchant: Credentials, test_database: TestDatabase
) -> None:
    response = await _refund(platform, merchant, payment_intent=paid["id"], reason="requested_by_customer")
    assert response.status_code == 200, response.text
    refund = response.json()
    assert (refund["status"], refund["amount"], refund["charge"]) == ("succeeded", 3000, paid["latest_charge"])
    async with platform.client(merchant) as client:
        charge = (await client.get(f"/v1/charges/{paid['latest_charge']}")).json()
        listed = (await client.get("/v1/refunds", params={"payment_intent": paid["id"]})).json()
        kinds = [event["type"] for event in (await client.get("/v1/events", params={"limit": 100})).json()["data"]]
    assert (charge["amount_refunded"], charge["refunded"]) == (3000, True)
    assert [item["id"] for item in listed["data"]] == [refund["id"]]
    assert {"refund.created", "refund.updated", "charge.refunded"} <= set(kinds)
    assert await _available(test_database, merchant) == -3000
    async with platform.client(merchant) as client:
        balance = (await client.get("/v1/balance")).json()
    # The capture's 30.00 less its fee (0.87 + 0.30) is pending; the refund came out of available.
    assert balance == {
        "object": "balance",
        "available": [{"amount": -3000, "currency": "EUR"}],
        "pending": [{"amount": 3000 - 117, "currency": "EUR"}],
        "livemode": False,
    }
    refunded = await _owner_value(
        test_database, "SELECT amount_refunded FROM acquirer.payments WHERE reference = $1", paid["latest_charge"]
    )
    assert refunded == 3000


async def test_several_partial_refunds_never_more_than_captured(
    paid: dict[str, Any], platform: Platform, merchant: Credentials
) -> None:
    assert (await _refund(platform, merchant, charge=paid["latest_charge"], amount=500)).json()["status"] == "succeeded"
    assert (await _refund(platform, merchant, payment_intent=paid["id"], amount=1700)).json()["status"] == "succeeded"
    too_much = await _refund(platform, merchant, payment_intent=paid["id"], amount=801)
    assert (too_much.status_code, too_much.json()["error"]["code"], too_much.json()["error"]["param"]) == (
        400,
        "amount_too_large",
        "amount",
    )
    rest = (await _refund(platform, merchant, payment_intent=paid["id"])).json()
    assert rest["amount"] == 800
    done = await _refund(platform, merchant, payment_intent=paid["id"])
    assert done.json()["error"]["code"] == "charge_already_refunded"


async def test_fifty_concurrent_refunds_stop_at_what_was_captured(
    paid: dict[str, Any], platform: Platform, merchant: Credentials, test_database: TestDatabase
) -> None:
    answers = await asyncio.gather(
        *(_refund(platform, merchant, payment_intent=paid["id"], amount=100) for _ in range(CONCURRENT))
    )
    succeeded = [answer for answer in answers if answer.status_code == 200]
    refused = [answer.json()["error"]["code"] for answer in answers if answer.status_code != 200]
    assert len(succeeded) == 30
    assert all(answer.json()["status"] == "succeeded" for answer in succeeded)
    assert set(refused) <= {"amount_too_large", "charge_already_refunded"}, refused
    assert len(refused) == CONCURRENT - 30
    acquired = await _owner_value(
        test_database, "SELECT amount_refunded FROM acquirer.payments WHERE reference = $1", paid["latest_charge"]
    )
    assert acquired == 3000
    assert await _available(test_database, merchant) == -3000


async def test_refused_before_capture_or_without_a_target(
    acquirer: ApiProcess, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    method = (await exchange(platform, merchant, await token_id(vault, merchant))).json()["id"]
    async with platform.client(merchant) as client:
        body = {"amount": 900, "currency": "EUR", "payment_method": method, "capture_method": "manual", "confirm": True}
        authorized = (await client.post("/v1/payment_intents", json=body)).json()
    uncaptured = await _refund(platform, merchant, payment_intent=authorized["id"])
    assert (uncaptured.status_code, uncaptured.json()["error"]["code"], uncaptured.json()["error"]["param"]) == (
        400,
        "payment_intent_unexpected_state",
        "payment_intent",
    )
    nothing = await _refund(platform, merchant)
    assert (nothing.status_code, nothing.json()["error"]["param"]) == (400, "payment_intent")
    unknown = await _refund(platform, merchant, charge="ch_01M00000000000000000000000")
    assert (unknown.status_code, unknown.json()["error"]["param"]) == (404, "charge")
    zero = await _refund(platform, merchant, payment_intent=authorized["id"], amount=0)
    assert (zero.status_code, zero.json()["error"]["param"]) == (400, "amount")
