"""Settlement: `bastion acquirer settle` pays each merchant its captures less its refunds and
lost disputes, writes the day's report and tells Bastion (`settlement.paid`); Bastion books it
once: the captures' net moves from pending to available, and the cash the acquirer paid is no
longer owed. A settlement naming a capture Bastion has not caught up with waits for it."""

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bastion.payments.check import PaymentsSummary, check_payments
from bastion.platform.db import plain_dsn
from bastion.platform.settings import Settings
from tests.support.acquirer import blind_client, deliver, notifications_of, notifications_to
from tests.support.cli import run_bastion
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import DISPUTED, payment_method


@pytest.fixture
async def payer(acquirer: ApiProcess, merchant: Credentials) -> Credentials:
    return merchant


async def _post(platform: Platform, payer: Credentials, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with platform.client(payer) as client:
        answer = await client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def _settle(test_database: TestDatabase) -> dict[str, Any]:
    ran = await run_bastion("acquirer", "settle", "--json", env=test_database.env())
    assert ran.returncode == 0, ran.stderr
    settled: dict[str, Any] = json.loads(ran.stdout)
    return settled


async def _settlement_of(test_database: TestDatabase, merchant: Credentials) -> dict[str, Any]:
    told = [n for n in await notifications_to(test_database, merchant.merchant_id) if n["type"] == "settlement.paid"]
    assert len(told) == 1, told
    return told[0]


def _report_rows(path: str, merchant_id: str) -> list[dict[str, str]]:
    with Path(path).open(encoding="utf-8", newline="") as report:
        return [row for row in csv.DictReader(report) if row["merchant"] == merchant_id]


async def _books(test_database: TestDatabase, merchant: Credentials) -> dict[str, int]:
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        rows = await connection.fetch(
            "SELECT a.name, sum(b.credits_posted - b.debits_posted) AS posted "
            "FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id "
            "WHERE a.merchant_id = $1 AND a.code LIKE 'payments.%' GROUP BY a.name",
            merchant.merchant_id,
        )
    finally:
        await connection.close()
    return {row["name"]: row["posted"] for row in rows}


async def _checked(platform: Platform) -> PaymentsSummary:
    async with platform.owner.transaction() as connection:
        checked = await check_payments(connection, platform.clock.now())
    assert isinstance(checked, PaymentsSummary), checked
    return checked


async def test_a_settlement_moves_the_net_to_available_once_and_is_reported(
    payer: Credentials, platform: Platform, vault: ApiProcess, settings: Settings, test_database: TestDatabase
) -> None:
    paid = await _post(
        platform,
        payer,
        "/v1/payment_intents",
        {"amount": 2000, "currency": "EUR", "payment_method": await payment_method(platform, vault, payer), "confirm": True},
    )
    refunded = await _post(platform, payer, "/v1/refunds", {"payment_intent": paid["id"], "amount": 500})
    disputed = await _post(
        platform,
        payer,
        "/v1/payment_intents",
        {
            "amount": 3000,
            "currency": "EUR",
            "payment_method": await payment_method(platform, vault, payer, number=DISPUTED),
            "confirm": True,
        },
    )
    async with platform.client() as client:
        for notification in await notifications_of(test_database, disputed["latest_charge"]):
            await deliver(client, settings, notification)
    async with platform.client(payer) as client:
        dispute = (await client.get("/v1/disputes", params={"charge": disputed["latest_charge"]})).json()["data"][0]
        assert (await client.post(f"/v1/disputes/{dispute['id']}/close")).json()["status"] == "lost"

    settled = await _settle(test_database)
    mine = [each for each in settled["settlements"] if each["merchant"] == payer.merchant_id]
    # Captured 20.00 and 30.00, refunded 5.00, lost 30.00 in the dispute: the acquirer pays 15.00.
    assert [(each["currency"], each["net"], each["items"]) for each in mine] == [("EUR", 1500, 4)]
    rows = await asyncio.to_thread(_report_rows, settled["report"], payer.merchant_id)
    assert sorted((row["type"], row["reference"], int(row["amount"])) for row in rows) == sorted(
        [
            ("capture", paid["latest_charge"], 2000),
            ("capture", disputed["latest_charge"], 3000),
            ("refund", refunded["id"], -500),
            ("dispute", disputed["latest_charge"], -3000),
        ]
    )

    before = await _books(test_database, payer)
    notification = await _settlement_of(test_database, payer)
    async with platform.client() as client:
        results = [(await deliver(client, settings, notification)).json()["result"] for _ in range(2)]
    assert results == ["applied", "duplicate"]
    after = await _books(test_database, payer)
    # The captures' net of fees (20.00 - 0.88, 30.00 - 1.17) is now available.
    released = (2000 - 88) + (3000 - 117)
    assert after["balance_pending"] == before["balance_pending"] - released == 0
    assert after["balance_available"] == before["balance_available"] + released
    # The receivable (an asset: debits over credits) is paid off.
    assert after["acquirer_receivable"] == before["acquirer_receivable"] + 1500 == 0
    async with platform.client(payer) as client:
        balance = (await client.get("/v1/balance")).json()
    assert balance["available"] == [{"amount": released - 500 - 3000 - 1500, "currency": "EUR"}]
    assert (await _checked(platform)).settlements >= 1
    # Nothing is settled twice: the next run has nothing of this merchant's.
    again = await _settle(test_database)
    assert [each for each in again["settlements"] if each["merchant"] == payer.merchant_id] == []


async def test_a_settlement_waits_for_a_capture_bastion_has_not_heard_of(
    payer: Credentials, platform: Platform, vault: ApiProcess, settings: Settings, test_database: TestDatabase
) -> None:
    method = await payment_method(platform, vault, payer)
    async with blind_client(platform.services, payer) as blind:
        intent = (
            await blind.post(
                "/v1/payment_intents", json={"amount": 1200, "currency": "USD", "payment_method": method, "confirm": True}
            )
        ).json()
    assert intent["status"] == "processing"
    await _settle(test_database)
    settlement = await _settlement_of(test_database, payer)
    async with platform.client() as client:
        early = await deliver(client, settings, settlement)
        assert (early.status_code, early.json()["error"]["code"]) == (400, "notification_early")
        for notification in await notifications_of(test_database, intent["latest_charge"]):
            if notification["type"] == "payment.captured":
                assert (await deliver(client, settings, notification)).json()["result"] == "applied"
        assert (await deliver(client, settings, settlement)).json()["result"] == "applied"
    await _checked(platform)
