"""Balance transactions: every movement of a merchant's balance, written with the ledger entries
that make it: a capture with its fee (pending until settled, then available), a refund, a
dispute's fee and its loss. They add up to the ledger's balances (`bastion payments check`
proves it for every merchant), page newest first, and filter by type, source and currency."""

import json
from typing import Any

import pytest

from bastion.payments.check import PaymentsSummary, check_payments
from bastion.platform.settings import Settings
from tests.support.acquirer import deliver, notifications_of, notifications_to
from tests.support.cli import run_bastion
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import DISPUTED, paid_intent

DAY_S = 86_400


@pytest.fixture
async def payer(acquirer: ApiProcess, merchant: Credentials) -> Credentials:
    return merchant


async def _movements(platform: Platform, payer: Credentials, **params: str) -> list[dict[str, Any]]:
    async with platform.client(payer) as client:
        answer = await client.get("/v1/balance_transactions", params={"limit": "100", **params})
    assert answer.status_code == 200, answer.text
    listed: list[dict[str, Any]] = answer.json()["data"]
    return listed


async def test_each_movement_of_the_balance_is_a_balance_transaction(
    payer: Credentials, platform: Platform, vault: ApiProcess, settings: Settings, test_database: TestDatabase
) -> None:
    paid = await paid_intent(platform, vault, payer, amount=2000)
    async with platform.client(payer) as client:
        refund = (await client.post("/v1/refunds", json={"payment_intent": paid["id"], "amount": 500})).json()
    disputed = await paid_intent(platform, vault, payer, amount=3000, number=DISPUTED)
    async with platform.client() as client:
        for notification in await notifications_of(test_database, disputed["latest_charge"]):
            await deliver(client, settings, notification)
    async with platform.client(payer) as client:
        dispute = (await client.get("/v1/disputes", params={"charge": disputed["latest_charge"]})).json()["data"][0]
        await client.post(f"/v1/disputes/{dispute['id']}/close")

    movements = await _movements(platform, payer)
    shown = [(m["type"], m["source"], m["amount"], m["fee"], m["net"], m["status"]) for m in movements]
    # Newest first: the dispute lost, its fee, the capture it disputes, the refund, the first capture.
    assert shown == [
        ("adjustment", dispute["id"], -3000, 0, -3000, "available"),
        ("adjustment", dispute["id"], 0, 1500, -1500, "available"),
        ("charge", disputed["latest_charge"], 3000, 117, 2883, "pending"),
        ("refund", refund["id"], -500, 0, -500, "available"),
        ("charge", paid["latest_charge"], 2000, 88, 1912, "pending"),
    ]
    charge = movements[-1]
    assert charge["id"].startswith("txn_")
    # A capture is expected to be available after the next midnight UTC, when the acquirer settles.
    assert charge["available_on"] % DAY_S == 0
    assert 0 < charge["available_on"] - charge["created"] <= DAY_S
    async with platform.client(payer) as client:
        balance = (await client.get("/v1/balance")).json()
        one = (await client.get(f"/v1/balance_transactions/{charge['id']}")).json()
    assert one == charge
    pending = sum(m["net"] for m in movements if m["status"] == "pending")
    available = sum(m["net"] for m in movements if m["status"] == "available")
    assert balance["pending"] == [{"amount": pending, "currency": "EUR"}]
    assert balance["available"] == [{"amount": available, "currency": "EUR"}]

    assert [m["source"] for m in await _movements(platform, payer, type="refund")] == [refund["id"]]
    assert len(await _movements(platform, payer, source=dispute["id"])) == 2
    assert await _movements(platform, payer, currency="USD") == []

    # Settled: the captures become available on the settlement's day.
    ran = await run_bastion("acquirer", "settle", "--json", env=test_database.env())
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["settlements"]
    told = [n for n in await notifications_to(test_database, payer.merchant_id) if n["type"] == "settlement.paid"]
    async with platform.client() as client:
        assert (await deliver(client, settings, told[0])).json()["result"] == "applied"
    settled = await _movements(platform, payer, type="charge")
    assert {m["status"] for m in settled} == {"available"}
    assert all(m["available_on"] <= m["created"] + DAY_S for m in settled)
    async with platform.owner.transaction() as connection:
        checked = await check_payments(connection, platform.clock.now())
    assert isinstance(checked, PaymentsSummary), checked


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"type": "payout"}, "type"),
        ({"currency": "euro"}, "currency"),
        ({"limit": "0"}, "limit"),
        ({"source": "x" * 65}, "source"),
    ],
)
async def test_bad_filters_are_refused_naming_them(
    payer: Credentials, platform: Platform, params: dict[str, str], param: str
) -> None:
    async with platform.client(payer) as client:
        answer = await client.get("/v1/balance_transactions", params=params)
        missing = await client.get("/v1/balance_transactions/txn_01M00000000000000000000000")
    assert (answer.status_code, answer.json()["error"]["param"]) == (400, param)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "resource_missing")
