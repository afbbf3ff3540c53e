"""The payments janitor: an authorization left uncaptured past the window is voided at the
acquirer and its intent canceled (`automatic`), its hold released; an attempt whose answer was
unknown stays `processing` with nothing posted until the sync asks the acquirer and records
what it did, once."""

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from bastion.payments.check import PaymentsSummary, check_payments
from bastion.payments.jobs import cancel_stale_authorizations, sync_unknown_attempts
from bastion.platform.db import plain_dsn
from tests.support.acquirer import blind_client
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import payment_method

ROUNDS_MAX = 20


async def _acquired(test_database: TestDatabase, charge_id: str) -> dict[str, Any]:
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        row = await connection.fetchrow("SELECT status, amount_captured FROM acquirer.payments WHERE reference = $1", charge_id)
        assert row is not None
        return dict(row)
    finally:
        await connection.close()


async def test_an_authorization_past_the_window_is_voided_and_canceled(
    acquirer: ApiProcess, platform: Platform, vault: ApiProcess, merchant: Credentials, test_database: TestDatabase
) -> None:
    async with platform.client(merchant) as client:
        body = {"amount": 800, "currency": "EUR", "capture_method": "manual", "confirm": True}
        intent = (
            await client.post(
                "/v1/payment_intents", json=body | {"payment_method": await payment_method(platform, vault, merchant)}
            )
        ).json()
        assert intent["status"] == "requires_capture"
        assert (await client.get(f"/v1/payment_intents/{intent['id']}")).json()["status"] == "requires_capture"
        with platform.clock.shifted(timedelta(days=7, minutes=1)):
            # Other tests' authorizations are as stale by then: rounds until none is left.
            rounds = [await cancel_stale_authorizations(platform.services.commands) for _ in range(ROUNDS_MAX)]
        assert rounds[0] >= 1
        assert rounds[-1] == 0
        canceled = (await client.get(f"/v1/payment_intents/{intent['id']}")).json()
    assert (canceled["status"], canceled["cancellation_reason"], canceled["amount_capturable"]) == ("canceled", "automatic", 0)
    assert (await _acquired(test_database, intent["latest_charge"]))["status"] == "voided"


@pytest.mark.parametrize("capture_method", ["automatic", "manual"])
async def test_an_unknown_answer_waits_for_the_sync_which_records_it_once(
    *,
    acquirer: ApiProcess,
    platform: Platform,
    vault: ApiProcess,
    merchant: Credentials,
    test_database: TestDatabase,
    capture_method: str,
) -> None:
    commands = platform.services.commands
    body = {"amount": 1200, "currency": "EUR", "capture_method": capture_method, "confirm": True}
    async with blind_client(platform.services, merchant) as client:
        answer = await client.post(
            "/v1/payment_intents", json=body | {"payment_method": await payment_method(platform, vault, merchant)}
        )
        assert answer.status_code == 200, answer.text
        intent = answer.json()
        assert intent["status"] == "processing"
        charge = (await client.get(f"/v1/charges/{intent['latest_charge']}")).json()
        assert (charge["status"], charge["outcome"]["type"]) == ("pending", "unknown")
    # Two janitors at once (one per API process) both find it: it is recorded once.
    rounds = await asyncio.gather(*(sync_unknown_attempts(commands, after=timedelta(0)) for _ in range(2)))
    assert sum(rounds) >= 1
    assert await sync_unknown_attempts(commands, after=timedelta(0)) == 0, "nothing left to sync"
    async with platform.client(merchant) as client:
        settled = (await client.get(f"/v1/payment_intents/{intent['id']}")).json()
    expected = "succeeded" if capture_method == "automatic" else "requires_capture"
    assert settled["status"] == expected
    announced = "payment_intent.succeeded" if capture_method == "automatic" else "payment_intent.amount_capturable_updated"
    async with platform.owner.transaction() as connection:
        sent = await connection.fetchval(
            "SELECT count(*) FROM events WHERE type = $1 AND data->'object'->>'id' = $2", announced, intent["id"]
        )
    assert sent == 1
    async with platform.owner.transaction() as connection:
        assert isinstance(await check_payments(connection, platform.clock.now()), PaymentsSummary)
