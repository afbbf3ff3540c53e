"""3-D Secure through Bastion: a card whose issuer asks for a challenge leaves the intent in
`requires_action` with the acquirer's page; the customer's answer there reaches Bastion as the
acquirer's notification (or, if that never comes, the janitor's sync), and the intent goes on or
fails with `payment_intent_authentication_failure`. A cancel meanwhile voids it at the acquirer."""

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from bastion.payments.check import PaymentsSummary, check_payments
from bastion.payments.jobs import sync_open_challenges
from bastion.platform.db import plain_dsn
from bastion.platform.settings import Settings
from tests.support.acquirer import deliver, notifications_of
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import CHALLENGED, payment_method

RETURN_URL = "https://shop.test/orders/7"


@pytest.fixture
async def payer(acquirer: ApiProcess, merchant: Credentials) -> Credentials:
    return merchant


async def _challenged(platform: Platform, vault: ApiProcess, payer: Credentials, **body: Any) -> dict[str, Any]:
    method = await payment_method(platform, vault, payer, number=CHALLENGED)
    request = {"amount": 4200, "currency": "EUR", "payment_method": method, "confirm": True, "return_url": RETURN_URL}
    async with platform.client(payer) as client:
        answer = await client.post("/v1/payment_intents", json=request | body)
    assert answer.status_code == 200, answer.text
    intent: dict[str, Any] = answer.json()
    return intent


async def _answer_challenge(intent: dict[str, Any], outcome: str) -> httpx.Response:
    """The customer's browser on the acquirer's page: it follows the redirect, then answers."""
    url = urlsplit(intent["next_action"]["redirect_to_url"]["url"])
    token = parse_qs(url.query)["token"][0]
    async with httpx.AsyncClient(base_url=f"{url.scheme}://{url.netloc}", trust_env=False) as browser:
        page = await browser.get(url.path, params={"token": token})
        assert page.status_code == 200
        return await browser.post(url.path, data={"token": token, "outcome": outcome})


async def _deliver_all(platform: Platform, settings: Settings, test_database: TestDatabase, charge_id: str) -> list[str]:
    async with platform.client() as client:
        answers = [
            await deliver(client, settings, notification) for notification in await notifications_of(test_database, charge_id)
        ]
    assert all(answer.status_code == 200 for answer in answers), [answer.text for answer in answers]
    return [answer.json()["result"] for answer in answers]


async def _get(platform: Platform, payer: Credentials, path: str) -> dict[str, Any]:
    async with platform.client(payer) as client:
        found: dict[str, Any] = (await client.get(path)).json()
    return found


async def _checked(platform: Platform) -> None:
    async with platform.owner.transaction() as connection:
        checked = await check_payments(connection, platform.clock.now())
    assert isinstance(checked, PaymentsSummary), checked


@pytest.mark.parametrize(("capture_method", "status"), [("automatic", "succeeded"), ("manual", "requires_capture")])
async def test_a_completed_challenge_authorizes_through_the_notification(
    *,
    payer: Credentials,
    platform: Platform,
    vault: ApiProcess,
    settings: Settings,
    test_database: TestDatabase,
    capture_method: str,
    status: str,
) -> None:
    intent = await _challenged(platform, vault, payer, capture_method=capture_method)
    assert intent["status"] == "requires_action"
    redirect = intent["next_action"]["redirect_to_url"]
    assert intent["next_action"]["type"] == "redirect_to_url"
    assert redirect["url"].startswith(f"http://127.0.0.1:{test_database.acquirer_pages_port}/challenges/acqp_")
    assert redirect["return_url"] == RETURN_URL
    charge = await _get(platform, payer, f"/v1/charges/{intent['latest_charge']}")
    assert (charge["status"], charge["captured"]) == ("pending", False)
    events = await _get(platform, payer, "/v1/events?type=payment_intent.requires_action")
    assert any(event["data"]["object"]["id"] == intent["id"] for event in events["data"])

    answered = await _answer_challenge(intent, "complete")
    assert answered.status_code == 303
    back = urlsplit(answered.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == RETURN_URL
    assert parse_qs(back.query) == {"payment_intent": [intent["id"]], "redirect_status": ["succeeded"]}

    assert await _deliver_all(platform, settings, test_database, charge["id"]) == ["applied"]
    done = await _get(platform, payer, f"/v1/payment_intents/{intent['id']}")
    assert done["status"] == status
    assert done["next_action"] is None
    assert (done["amount_received"], done["amount_capturable"]) == ((4200, 0) if status == "succeeded" else (0, 4200))
    assert (await _get(platform, payer, f"/v1/charges/{charge['id']}"))["status"] == "succeeded"
    # The same notification again (the acquirer did not hear Bastion's answer) changes nothing.
    assert await _deliver_all(platform, settings, test_database, charge["id"]) == ["duplicate"]
    await _checked(platform)


async def test_a_failed_challenge_fails_the_attempt_with_authentication_failure(
    payer: Credentials, platform: Platform, vault: ApiProcess, settings: Settings, test_database: TestDatabase
) -> None:
    intent = await _challenged(platform, vault, payer)
    answered = await _answer_challenge(intent, "fail")
    assert parse_qs(urlsplit(answered.headers["location"]).query)["redirect_status"] == ["failed"]
    assert await _deliver_all(platform, settings, test_database, intent["latest_charge"]) == ["applied"]
    failed = await _get(platform, payer, f"/v1/payment_intents/{intent['id']}")
    assert failed["status"] == "requires_payment_method"
    assert failed["next_action"] is None
    error = failed["last_payment_error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "payment_intent_authentication_failure",
        "authentication_failed",
    )
    charge = await _get(platform, payer, f"/v1/charges/{intent['latest_charge']}")
    assert (charge["status"], charge["failure_code"]) == ("failed", "payment_intent_authentication_failure")
    # Another card may be tried, as after any decline.
    other = await payment_method(platform, vault, payer)
    async with platform.client(payer) as client:
        retried = await client.post(f"/v1/payment_intents/{intent['id']}/confirm", json={"payment_method": other})
    assert retried.json()["status"] == "succeeded"
    await _checked(platform)


async def test_while_the_challenge_is_open_only_a_cancel_or_its_outcome_moves_the_intent(
    payer: Credentials, platform: Platform, vault: ApiProcess, test_database: TestDatabase
) -> None:
    intent = await _challenged(platform, vault, payer)
    async with platform.client(payer) as client:
        confirm = await client.post(f"/v1/payment_intents/{intent['id']}/confirm", json={})
        assert (confirm.status_code, confirm.json()["error"]["code"]) == (400, "payment_intent_unexpected_state")
        amount = await client.post(f"/v1/payment_intents/{intent['id']}", json={"amount": 1})
        assert (amount.status_code, amount.json()["error"]["param"]) == (400, "amount")
        described = await client.post(f"/v1/payment_intents/{intent['id']}", json={"description": "order 7"})
        assert described.json()["description"] == "order 7"
        canceled = await client.post(f"/v1/payment_intents/{intent['id']}/cancel", json={"cancellation_reason": "abandoned"})
    assert (canceled.json()["status"], canceled.json()["cancellation_reason"]) == ("canceled", "abandoned")
    charge = await _get(platform, payer, f"/v1/charges/{intent['latest_charge']}")
    assert (charge["status"], charge["failure_code"]) == ("failed", "payment_intent_authentication_failure")
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        acquired = await connection.fetchval("SELECT status FROM acquirer.payments WHERE reference = $1", charge["id"])
    finally:
        await connection.close()
    assert acquired == "voided"
    # The page no longer completes anything.
    assert (await _answer_challenge_late(intent)).status_code == 404
    await _checked(platform)


async def _answer_challenge_late(intent: dict[str, Any]) -> httpx.Response:
    url = urlsplit(intent["next_action"]["redirect_to_url"]["url"])
    token = parse_qs(url.query)["token"][0]
    async with httpx.AsyncClient(base_url=f"{url.scheme}://{url.netloc}", trust_env=False) as browser:
        return await browser.post(url.path, data={"token": token, "outcome": "complete"})


async def test_an_outcome_whose_notification_never_comes_is_found_by_the_janitor(
    payer: Credentials, platform: Platform, vault: ApiProcess, test_database: TestDatabase
) -> None:
    intent = await _challenged(platform, vault, payer, amount=900, currency="JPY")
    assert (await _answer_challenge(intent, "complete")).status_code == 303
    # Not delivered: after the window, the janitor asks the acquirer.
    assert await sync_open_challenges(platform.services.commands) == 0
    with platform.clock.shifted(timedelta(minutes=21)):
        assert await sync_open_challenges(platform.services.commands) >= 1
    done = await _get(platform, payer, f"/v1/payment_intents/{intent['id']}")
    assert (done["status"], done["amount_received"]) == ("succeeded", 900)
    await _checked(platform)
