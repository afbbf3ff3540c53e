"""The sandbox acquirer's 3-D Secure challenge and its notifications, against a real `bastion
acquirer`: a challenged card waits for its page, the page completes or fails it once and sends
the browser back, an unanswered challenge expires, and every change is recorded as a signed
notification about the reference Bastion gave."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from bastion.kernel.ids import new_id
from bastion.platform.db import plain_dsn
from tests.support.acquirer import notifications_of
from tests.support.postgres import TestDatabase

CHALLENGED = "4000002760003184"
# The acquirer looks for expired challenges every second.
EXPIRY_WAIT_S = 10


@pytest.fixture
async def browser(test_database: TestDatabase) -> AsyncIterator[httpx.AsyncClient]:
    """The cardholder's browser on the acquirer's pages (plain HTTP on loopback); redirects are read, not followed."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{test_database.acquirer_pages_port}", trust_env=False) as client:
        yield client


async def _challenged(
    client: httpx.AsyncClient, test_database: TestDatabase, *, capture: bool, return_url: str | None
) -> dict[str, Any]:
    body = {
        "merchant": "mer_test",
        "reference": new_id("ch"),
        "amount": 1999,
        "currency": "EUR",
        "capture": capture,
        "card": {"number": CHALLENGED, "exp_month": "12", "exp_year": "2034", "cvc": "123"},
        "return_url": return_url,
    }
    answer = await client.post("/v1/payments", json=body, headers={"Idempotency-Key": new_id("req")})
    assert answer.status_code == 200, answer.text
    payment: dict[str, Any] = answer.json()
    assert payment["status"] == "requires_action"
    assert payment["next_action_url"].startswith(f"http://127.0.0.1:{test_database.acquirer_pages_port}/challenges/")
    return payment


def _page(payment: dict[str, Any]) -> tuple[str, str]:
    url = urlsplit(payment["next_action_url"])
    return url.path, parse_qs(url.query)["token"][0]


@pytest.mark.parametrize(
    ("outcome", "capture", "status"),
    [("complete", True, "captured"), ("complete", False, "authorized"), ("fail", False, "declined")],
)
async def test_the_challenge_page_decides_once_and_sends_the_browser_back(
    *,
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    test_database: TestDatabase,
    outcome: str,
    capture: bool,
    status: str,
) -> None:
    payment = await _challenged(client, test_database, capture=capture, return_url="https://shop.test/done?order=7")
    assert await notifications_of(test_database, payment["reference"]) == [], "nothing is said before the outcome"
    path, token = _page(payment)
    page = await browser.get(path, params={"token": token})
    assert page.status_code == 200
    assert "19.99 EUR" in page.text
    assert "3184" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]

    answered = await browser.post(path, data={"token": token, "outcome": outcome})
    assert answered.status_code == 303
    back = urlsplit(answered.headers["location"])
    assert (back.netloc, back.path) == ("shop.test", "/done")
    assert parse_qs(back.query) == {"order": ["7"], "redirect_status": ["failed" if outcome == "fail" else "succeeded"]}

    final = (await client.get(f"/v1/payments/{payment['id']}")).json()
    assert final["status"] == status
    assert final["next_action_url"] is None
    assert final["amount_captured"] == (1999 if status == "captured" else 0)
    if status == "declined":
        assert final["decline_code"] == "authentication_failed"
    notified = await notifications_of(test_database, payment["reference"])
    assert [notification["type"] for notification in notified] == [f"payment.{status}"]
    assert notified[0]["data"]["status"] == status
    assert notified[0]["merchant"] == "mer_test"

    again = await browser.post(path, data={"token": token, "outcome": "complete"})
    assert again.status_code == 404, "a challenge is answered once"


async def test_the_page_wants_its_token_and_an_outcome(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, test_database: TestDatabase
) -> None:
    payment = await _challenged(client, test_database, capture=False, return_url=None)
    path, token = _page(payment)
    # Another first character: one the token cannot already have.
    other = ("y" if token[0] == "x" else "x") + token[1:]
    assert (await browser.get(path, params={"token": other})).status_code == 404
    assert (await browser.get("/challenges/acqp_nothing", params={"token": token})).status_code == 404
    assert (await browser.post(path, data={"token": token, "outcome": "maybe"})).status_code == 400
    forged = await browser.post(path, data={"token": token[:-1], "outcome": "complete"})
    assert forged.status_code == 404
    assert (await client.get(f"/v1/payments/{payment['id']}")).json()["status"] == "requires_action"
    # Without a return URL, the page itself says it is over.
    done = await browser.post(path, data={"token": token, "outcome": "complete"})
    assert done.status_code == 200
    assert "Authentication completed" in done.text


async def test_a_voided_challenge_cannot_be_answered(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, test_database: TestDatabase
) -> None:
    payment = await _challenged(client, test_database, capture=False, return_url=None)
    voided = await client.post(f"/v1/payments/{payment['id']}/void", headers={"Idempotency-Key": new_id("req")})
    assert voided.json()["status"] == "voided"
    path, token = _page(payment)
    assert (await browser.post(path, data={"token": token, "outcome": "complete"})).status_code == 404


async def test_an_unanswered_challenge_expires_as_failed_authentication(
    client: httpx.AsyncClient, test_database: TestDatabase
) -> None:
    payment = await _challenged(client, test_database, capture=True, return_url=None)
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        await connection.execute(
            "UPDATE acquirer.payments SET created_at = created_at - interval '16 minutes' WHERE id = $1", payment["id"]
        )
    finally:
        await connection.close()
    for _ in range(EXPIRY_WAIT_S * 10):
        expired = (await client.get(f"/v1/payments/{payment['id']}")).json()
        if expired["status"] != "requires_action":
            break
        await asyncio.sleep(0.1)
    assert (expired["status"], expired["decline_code"]) == ("declined", "authentication_failed")
    assert [n["type"] for n in await notifications_of(test_database, payment["reference"])] == ["payment.declined"]


async def test_every_change_is_notified_once(client: httpx.AsyncClient, test_database: TestDatabase) -> None:
    reference = new_id("ch")
    body = {
        "merchant": "mer_test",
        "reference": reference,
        "amount": 1000,
        "currency": "EUR",
        "capture": False,
        "card": {"number": "4242424242424242", "exp_month": "12", "exp_year": "2034", "cvc": "123"},
    }
    key = new_id("req")
    payment = (await client.post("/v1/payments", json=body, headers={"Idempotency-Key": key})).json()
    # The same request again is the same operation: no second notification.
    await client.post("/v1/payments", json=body, headers={"Idempotency-Key": key})
    await client.post(f"/v1/payments/{payment['id']}/capture", json={"amount": 700}, headers={"Idempotency-Key": new_id("req")})
    refund = {"reference": new_id("re"), "amount": 300}
    refunded = (
        await client.post(f"/v1/payments/{payment['id']}/refunds", json=refund, headers={"Idempotency-Key": new_id("req")})
    ).json()
    about_payment = await notifications_of(test_database, reference)
    assert [n["type"] for n in about_payment] == ["payment.authorized", "payment.captured"]
    assert about_payment[1]["data"]["amount_captured"] == 700
    about_refund = await notifications_of(test_database, refund["reference"])
    assert [n["type"] for n in about_refund] == ["refund.succeeded"]
    assert about_refund[0]["data"]["id"] == refunded["id"]
    assert about_refund[0]["merchant"] == "mer_test"
