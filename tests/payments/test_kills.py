"""`bastion api` killed with SIGKILL after each phase of a confirm, a capture and a refund
(`BASTION_FAILPOINT`): the client's retry with the same Idempotency-Key finishes the work once.
The acquirer's record is the judge (one payment, one capture, one refund), with the events and
`bastion payments check`'s proof that the books agree."""

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import pytest

from bastion.payments.check import PaymentsSummary, check_payments
from bastion.platform.db import plain_dsn
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase, running_api_process
from tests.support.vault import payment_method

pytestmark = pytest.mark.slow

FAILPOINTS = ["phased.started", "phased.called", "phased.finished"]
HOLD_TIMEOUT_S = 2
FINISH_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.2


async def _post(url: str, credentials: Credentials, path: str, body: dict[str, Any], key: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, headers=credentials.headers, timeout=20) as client:
        return await client.post(path, json=body, headers={"Idempotency-Key": key})


async def _killed_then_retried(
    failpoint: str, test_database: TestDatabase, credentials: Credentials, path: str, body: dict[str, Any]
) -> httpx.Response:
    """The request to an API that kills itself at `failpoint`, then retried with the same key on a
    fresh API (after a 409 while the dead holder's key is not yet free) until answered."""
    key = f"kill-{failpoint}"
    env = {"BASTION_FAILPOINT": failpoint, "BASTION_IDEMPOTENCY_HOLD_TIMEOUT_S": str(HOLD_TIMEOUT_S)}
    with running_api_process(test_database, env) as dying, pytest.raises(httpx.TransportError):
        await _post(dying.url, credentials, path, body, key)
    with running_api_process(test_database, {"BASTION_IDEMPOTENCY_HOLD_TIMEOUT_S": str(HOLD_TIMEOUT_S)}) as api:
        deadline = time.monotonic() + FINISH_TIMEOUT_S
        while True:
            answer = await _post(api.url, credentials, path, body, key)
            if answer.status_code != 409 or time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_INTERVAL_S)
        replay = await _post(api.url, credentials, path, body, key)
    assert answer.status_code == 200, answer.text
    assert replay.json() == answer.json(), "the same key answers the same"
    return answer


async def _owner(test_database: TestDatabase, query: str, *args: Any) -> Any:
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


async def _events(test_database: TestDatabase, kind: str, object_id: str) -> int:
    count: int = await _owner(
        test_database, "SELECT count(*) FROM events WHERE type = $1 AND data->'object'->>'id' = $2", kind, object_id
    )
    return count


async def _books_agree(platform: Platform) -> None:
    async with platform.owner.transaction() as connection:
        result = await check_payments(connection, platform.clock.now())
    assert isinstance(result, PaymentsSummary), result


@pytest.mark.parametrize("failpoint", FAILPOINTS)
async def test_a_confirm_killed_after_any_phase_pays_once(
    failpoint: str, acquirer: ApiProcess, platform: Platform, vault: ApiProcess, test_database: TestDatabase
) -> None:
    merchant = await platform.merchant()
    body = {"amount": 1500, "currency": "EUR", "payment_method": await payment_method(platform, vault, merchant), "confirm": True}
    intent = (await _killed_then_retried(failpoint, test_database, merchant, "/v1/payment_intents", body)).json()
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 1500)
    payments = await _owner(test_database, "SELECT count(*) FROM acquirer.payments WHERE merchant = $1", merchant.merchant_id)
    assert payments == 1, "one payment at the acquirer"
    assert await _events(test_database, "payment_intent.succeeded", intent["id"]) == 1
    assert await _owner(test_database, "SELECT count(*) FROM payment_intents WHERE merchant_id = $1", merchant.merchant_id) == 1
    await _books_agree(platform)


@pytest.mark.parametrize("failpoint", FAILPOINTS)
async def test_a_capture_killed_after_any_phase_captures_once(
    failpoint: str, acquirer: ApiProcess, platform: Platform, vault: ApiProcess, test_database: TestDatabase
) -> None:
    merchant = await platform.merchant()
    body = {"amount": 1500, "currency": "EUR", "capture_method": "manual", "confirm": True}
    async with platform.client(merchant) as client:
        authorized = (
            await client.post(
                "/v1/payment_intents", json=body | {"payment_method": await payment_method(platform, vault, merchant)}
            )
        ).json()
    path = f"/v1/payment_intents/{authorized['id']}/capture"
    intent = (await _killed_then_retried(failpoint, test_database, merchant, path, {"amount_to_capture": 1000})).json()
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 1000)
    captured = await _owner(
        test_database, "SELECT amount_captured FROM acquirer.payments WHERE reference = $1", authorized["latest_charge"]
    )
    assert captured == 1000
    assert await _events(test_database, "charge.captured", authorized["latest_charge"]) == 1
    await _books_agree(platform)


@pytest.mark.parametrize("failpoint", FAILPOINTS)
async def test_a_refund_killed_after_any_phase_refunds_once(
    failpoint: str, acquirer: ApiProcess, platform: Platform, vault: ApiProcess, test_database: TestDatabase
) -> None:
    merchant = await platform.merchant()
    body = {"amount": 1500, "currency": "EUR", "confirm": True}
    async with platform.client(merchant) as client:
        paid = (
            await client.post(
                "/v1/payment_intents", json=body | {"payment_method": await payment_method(platform, vault, merchant)}
            )
        ).json()
    refund = (
        await _killed_then_retried(
            failpoint, test_database, merchant, "/v1/refunds", {"payment_intent": paid["id"], "amount": 400}
        )
    ).json()
    assert (refund["status"], refund["amount"]) == ("succeeded", 400)
    refunds = await _owner(
        test_database,
        "SELECT count(*) FROM acquirer.refunds r JOIN acquirer.payments p ON p.id = r.payment_id WHERE p.reference = $1",
        paid["latest_charge"],
    )
    assert refunds == 1, "one refund at the acquirer"
    assert await _owner(test_database, "SELECT count(*) FROM refunds WHERE charge_id = $1", paid["latest_charge"]) == 1
    await _books_agree(platform)
