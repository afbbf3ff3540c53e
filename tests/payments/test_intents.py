"""PaymentIntents end to end, through the in-process API, the session's vault (its forward)
and the session's sandbox acquirer: automatic and manual capture, partial capture, declines,
cancels, illegal transitions, replays, currencies of 0 and 3 decimals; and what each leaves in
the ledger and in the acquirer's own record."""

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest

from bastion.platform.db import plain_dsn
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import payment_method

CONCURRENT = 12
DECLINES = [
    ("4000000000000002", "card_declined", "generic_decline"),
    ("4000000000009995", "card_declined", "insufficient_funds"),
    ("4000000000009987", "card_declined", "lost_card"),
    ("4000000000000069", "card_declined", "expired_card"),
    ("4000000000000127", "incorrect_cvc", "incorrect_cvc"),
    ("4000000000000119", "processing_error", "processing_error"),
]


@pytest.fixture
async def payer(acquirer: ApiProcess, platform: Platform, merchant: Credentials) -> Credentials:
    """A merchant (the acquirer running beside the session's vault)."""
    return merchant


async def _post(
    platform: Platform, merchant: Credentials, path: str, body: dict[str, Any] | None = None, key: str | None = None
) -> httpx.Response:
    async with platform.client(merchant) as client:
        return await client.post(path, json=body, headers={"Idempotency-Key": key} if key else None)


async def _get(platform: Platform, merchant: Credentials, path: str, **params: Any) -> dict[str, Any]:
    async with platform.client(merchant) as client:
        response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def _owner_fetch(test_database: TestDatabase, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def _books(test_database: TestDatabase, merchant: Credentials) -> dict[str, tuple[int, int]]:
    """The merchant's payments accounts by name: (posted, pending), each as credits minus debits."""
    rows = await _owner_fetch(
        test_database,
        "SELECT a.name, sum(b.credits_posted - b.debits_posted) AS posted, sum(b.credits_pending - b.debits_pending) AS pending "
        "FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id "
        "WHERE a.merchant_id = $1 AND a.code LIKE 'payments.%' GROUP BY a.name",
        merchant.merchant_id,
    )
    return {row["name"]: (row["posted"], row["pending"]) for row in rows}


async def _acquirer_payment(test_database: TestDatabase, charge_id: str) -> asyncpg.Record:
    rows = await _owner_fetch(test_database, "SELECT * FROM acquirer.payments WHERE reference = $1", charge_id)
    assert len(rows) == 1
    return rows[0]


async def test_automatic_capture_pays_and_posts_the_fee(
    payer: Credentials, platform: Platform, vault: ApiProcess, test_database: TestDatabase
) -> None:
    method = await payment_method(platform, vault, payer)
    response = await _post(
        platform,
        payer,
        "/v1/payment_intents",
        {"amount": 2000, "currency": "EUR", "payment_method": method, "confirm": True, "metadata": {"order": "6735"}},
    )
    assert response.status_code == 200, response.text
    intent = response.json()
    assert (intent["status"], intent["amount_received"], intent["amount_capturable"]) == ("succeeded", 2000, 0)
    assert intent["metadata"] == {"order": "6735"}
    charge = await _get(platform, payer, f"/v1/charges/{intent['latest_charge']}")
    assert (charge["status"], charge["captured"], charge["amount_captured"], charge["paid"]) == ("succeeded", True, 2000, True)
    assert charge["outcome"]["network_status"] == "approved_by_network"
    assert charge["connector"] == "sandbox"
    assert charge["connector_reference"].startswith("acqp_")
    acquired = await _acquirer_payment(test_database, charge["id"])
    assert (acquired["status"], acquired["amount_captured"]) == ("captured", 2000)
    # 2.9 % of 20.00 is 0.58, plus 0.30: the merchant's pending balance is 20.00 - 0.88.
    books = await _books(test_database, payer)
    assert books["balance_pending"] == (2000 - 88, 0)
    assert books["acquirer_receivable"] == (-2000, 0)


async def test_manual_capture_in_part_releases_the_rest(
    payer: Credentials, platform: Platform, vault: ApiProcess, test_database: TestDatabase
) -> None:
    method = await payment_method(platform, vault, payer)
    created = await _post(platform, payer, "/v1/payment_intents", {"amount": 5000, "currency": "USD", "capture_method": "manual"})
    assert created.json()["status"] == "requires_payment_method"
    intent_id = created.json()["id"]
    confirmed = (await _post(platform, payer, f"/v1/payment_intents/{intent_id}/confirm", {"payment_method": method})).json()
    assert (confirmed["status"], confirmed["amount_capturable"]) == ("requires_capture", 5000)
    assert await _books(test_database, payer) == {
        "acquirer_receivable": (0, -5000),
        "balance_pending": (0, 5000),
        "balance_available": (0, 0),
    }
    too_much = await _post(platform, payer, f"/v1/payment_intents/{intent_id}/capture", {"amount_to_capture": 5001})
    assert (too_much.status_code, too_much.json()["error"]["code"]) == (400, "amount_too_large")
    captured = (await _post(platform, payer, f"/v1/payment_intents/{intent_id}/capture", {"amount_to_capture": 3000})).json()
    assert (captured["status"], captured["amount_received"], captured["amount_capturable"]) == ("succeeded", 3000, 0)
    # The hold is posted for 30.00 and the rest released; the fee is 0.87 + 0.30.
    assert await _books(test_database, payer) == {
        "acquirer_receivable": (-3000, 0),
        "balance_pending": (3000 - 117, 0),
        "balance_available": (0, 0),
    }
    charge = await _get(platform, payer, f"/v1/charges/{captured['latest_charge']}")
    assert (charge["captured"], charge["amount_captured"]) == (True, 3000)
    acquired = await _acquirer_payment(test_database, charge["id"])
    assert (acquired["status"], acquired["amount_captured"]) == ("captured", 3000)
    again = await _post(platform, payer, f"/v1/payment_intents/{intent_id}/capture")
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "payment_intent_unexpected_state"
    assert "succeeded" in again.json()["error"]["message"]


@pytest.mark.parametrize("decline", DECLINES, ids=[number for number, *_ in DECLINES])
async def test_a_declined_card_is_a_402_and_the_intent_waits_for_another(
    payer: Credentials, platform: Platform, vault: ApiProcess, test_database: TestDatabase, decline: tuple[str, str, str]
) -> None:
    number, code, decline_code = decline
    declined_method = await payment_method(platform, vault, payer, number)
    response = await _post(
        platform,
        payer,
        "/v1/payment_intents",
        {"amount": 1000, "currency": "EUR", "payment_method": declined_method, "confirm": True},
    )
    assert response.status_code == 402, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == ("card_error", code, decline_code)
    intent = error["payment_intent"]
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"]["decline_code"] == decline_code
    assert intent["last_payment_error"]["charge"] == error["charge"]
    failed = await _get(platform, payer, f"/v1/charges/{error['charge']}")
    assert (failed["status"], failed["failure_code"]) == ("failed", code)
    assert await _books(test_database, payer) == {}
    # Another card pays the same intent, with a charge of its own.
    good = await payment_method(platform, vault, payer)
    paid = await _post(platform, payer, f"/v1/payment_intents/{intent['id']}/confirm", {"payment_method": good})
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "succeeded"
    assert paid.json()["last_payment_error"] is None
    charges = await _get(platform, payer, "/v1/charges", payment_intent=intent["id"])
    assert [charge["status"] for charge in charges["data"]] == ["succeeded", "failed"]


async def test_cancel_voids_an_authorization_and_refuses_twice(
    payer: Credentials, platform: Platform, vault: ApiProcess, test_database: TestDatabase
) -> None:
    method = await payment_method(platform, vault, payer)
    body = {"amount": 700, "currency": "EUR", "payment_method": method, "capture_method": "manual", "confirm": True}
    intent = (await _post(platform, payer, "/v1/payment_intents", body)).json()
    canceled = await _post(
        platform, payer, f"/v1/payment_intents/{intent['id']}/cancel", {"cancellation_reason": "requested_by_customer"}
    )
    assert canceled.status_code == 200, canceled.text
    assert (canceled.json()["status"], canceled.json()["cancellation_reason"]) == ("canceled", "requested_by_customer")
    assert (await _acquirer_payment(test_database, intent["latest_charge"]))["status"] == "voided"
    assert await _books(test_database, payer) == {
        "acquirer_receivable": (0, 0),
        "balance_pending": (0, 0),
        "balance_available": (0, 0),
    }
    again = await _post(platform, payer, f"/v1/payment_intents/{intent['id']}/cancel")
    assert again.json()["error"]["code"] == "payment_intent_unexpected_state"
    unconfirmed = (await _post(platform, payer, "/v1/payment_intents", {"amount": 700, "currency": "EUR"})).json()
    dropped = (await _post(platform, payer, f"/v1/payment_intents/{unconfirmed['id']}/cancel")).json()
    assert (dropped["status"], dropped["canceled_at"] is not None) == ("canceled", True)


async def test_illegal_transitions_name_the_status(payer: Credentials, platform: Platform) -> None:
    intent = (await _post(platform, payer, "/v1/payment_intents", {"amount": 700, "currency": "EUR"})).json()
    capture = await _post(platform, payer, f"/v1/payment_intents/{intent['id']}/capture")
    assert capture.status_code == 400
    assert capture.json()["error"]["code"] == "payment_intent_unexpected_state"
    assert "requires_payment_method" in capture.json()["error"]["message"]
    confirm = await _post(platform, payer, f"/v1/payment_intents/{intent['id']}/confirm")
    assert (confirm.status_code, confirm.json()["error"]["param"]) == (400, "payment_method")


async def test_a_replayed_confirm_pays_once(
    payer: Credentials, platform: Platform, vault: ApiProcess, test_database: TestDatabase
) -> None:
    method = await payment_method(platform, vault, payer)
    body = {"amount": 1234, "currency": "EUR", "payment_method": method, "confirm": True}
    first = await _post(platform, payer, "/v1/payment_intents", body, key="order-1")
    second = await _post(platform, payer, "/v1/payment_intents", body, key="order-1")
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.json() == first.json()
    listed = await _get(platform, payer, "/v1/payment_intents")
    assert [intent["id"] for intent in listed["data"]] == [first.json()["id"]]
    rows = await _owner_fetch(test_database, "SELECT count(*) AS n FROM acquirer.payments WHERE merchant = $1", payer.merchant_id)
    assert rows[0]["n"] == 1


@pytest.mark.parametrize("case", [("JPY", 1000, 29), ("KWD", 1000, 29 + 300), ("EUR", 1, 1)], ids=["JPY", "KWD", "EUR"])
async def test_currencies_of_zero_and_three_decimals(
    payer: Credentials, platform: Platform, vault: ApiProcess, test_database: TestDatabase, case: tuple[str, int, int]
) -> None:
    currency, amount, fee = case
    method = await payment_method(platform, vault, payer)
    body = {"amount": amount, "currency": currency, "payment_method": method, "confirm": True}
    intent = (await _post(platform, payer, "/v1/payment_intents", body)).json()
    assert intent["status"] == "succeeded"
    # The fee is never more than the payment: one cent of EUR leaves nothing.
    assert (await _books(test_database, payer))["balance_pending"] == (amount - fee, 0)


@pytest.mark.parametrize(
    "case",
    [
        ({"amount": 0, "currency": "EUR"}, 400, "amount"),
        ({"amount": 100_000_000, "currency": "EUR"}, 400, "amount"),
        ({"amount": 100, "currency": "XXX"}, 400, "currency"),
        ({"amount": 100, "currency": "EUR", "capture_method": "later"}, 400, "capture_method"),
        ({"amount": 100, "currency": "EUR", "payment_method": "pm_nothing"}, 404, "payment_method"),
        ({"amount": 100, "currency": "EUR", "customer": "cus_nothing"}, 404, "customer"),
        ({"amount": 100, "currency": "EUR", "confirm": True}, 400, "payment_method"),
        ({"amount": 100, "currency": "EUR", "statement_descriptor": "x" * 23}, 400, "statement_descriptor"),
        ({"amount": 100, "currency": "EUR", "description": "card 4242 4242 4242 4242"}, 400, "description"),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(
    payer: Credentials, platform: Platform, test_database: TestDatabase, case: tuple[dict[str, Any], int, str]
) -> None:
    body, status, param = case
    response = await _post(platform, payer, "/v1/payment_intents", body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param
    rows = await _owner_fetch(
        test_database, "SELECT count(*) AS n FROM payment_intents WHERE merchant_id = $1", payer.merchant_id
    )
    assert rows[0]["n"] == 0


async def test_update_before_and_after_authorization(payer: Credentials, platform: Platform, vault: ApiProcess) -> None:
    method = await payment_method(platform, vault, payer)
    intent = (await _post(platform, payer, "/v1/payment_intents", {"amount": 500, "currency": "EUR"})).json()
    updated = (
        await _post(platform, payer, f"/v1/payment_intents/{intent['id']}", {"amount": 800, "payment_method": method})
    ).json()
    assert (updated["amount"], updated["status"]) == (800, "requires_confirmation")
    confirmed = (await _post(platform, payer, f"/v1/payment_intents/{intent['id']}", {"capture_method": "manual"})).json()
    assert confirmed["capture_method"] == "manual"
    authorized = (await _post(platform, payer, f"/v1/payment_intents/{intent['id']}/confirm")).json()
    assert (authorized["status"], authorized["amount_capturable"]) == ("requires_capture", 800)
    late = await _post(platform, payer, f"/v1/payment_intents/{intent['id']}", {"amount": 900})
    assert (late.status_code, late.json()["error"]["param"]) == (400, "amount")
    described = (await _post(platform, payer, f"/v1/payment_intents/{intent['id']}", {"description": "Order 6735"})).json()
    assert described["description"] == "Order 6735"


async def test_list_filters_by_customer_and_creation(payer: Credentials, platform: Platform) -> None:
    customer = await platform.create_customer(payer, email="ada@example.com")
    mine = (
        await _post(platform, payer, "/v1/payment_intents", {"amount": 500, "currency": "EUR", "customer": customer["id"]})
    ).json()
    await _post(platform, payer, "/v1/payment_intents", {"amount": 600, "currency": "EUR"})
    by_customer = await _get(platform, payer, "/v1/payment_intents", customer=customer["id"])
    assert [intent["id"] for intent in by_customer["data"]] == [mine["id"]]
    since = await _get(platform, payer, "/v1/payment_intents", **{"created[gte]": mine["created"]})
    assert len(since["data"]) == 2
    before = await _get(platform, payer, "/v1/payment_intents", **{"created[lte]": mine["created"] - 1})
    assert before["data"] == []


async def test_concurrent_payments_and_captures_of_one_merchant_all_succeed(
    payer: Credentials, platform: Platform, vault: ApiProcess, test_database: TestDatabase
) -> None:
    # Each finish locks its ledger balances in one step: concurrent ones cannot deadlock.
    methods = [await payment_method(platform, vault, payer) for _ in range(2 * CONCURRENT)]
    automatic = [
        {"amount": 1000, "currency": "EUR", "payment_method": method, "confirm": True} for method in methods[:CONCURRENT]
    ]
    manual = [
        body | {"payment_method": method, "capture_method": "manual"}
        for body, method in zip(automatic, methods[CONCURRENT:], strict=True)
    ]
    paid = await asyncio.gather(*(_post(platform, payer, "/v1/payment_intents", body) for body in automatic + manual))
    assert [answer.status_code for answer in paid] == [200] * (2 * CONCURRENT), [answer.text for answer in paid]
    authorized = [answer.json()["id"] for answer in paid[CONCURRENT:]]
    captured = await asyncio.gather(
        *(_post(platform, payer, f"/v1/payment_intents/{intent}/capture", {"amount_to_capture": 600}) for intent in authorized)
    )
    assert [answer.json()["status"] for answer in captured] == ["succeeded"] * CONCURRENT
    # 2.9 % of 10.00 and of 6.00, plus 0.30 each.
    fees = CONCURRENT * (29 + 30) + CONCURRENT * (17 + 30)
    assert (await _books(test_database, payer))["balance_pending"] == (CONCURRENT * (1000 + 600) - fees, 0)
