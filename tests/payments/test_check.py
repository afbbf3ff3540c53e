"""`bastion payments check` over the session's books: consistent after payments of every kind
(captured at once, captured in part, canceled, declined, refunded); a charge, an intent or a fee
changed behind Bastion's back is named, and the command exits 1."""

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bastion.payments.check import Disagreement, PaymentsSummary, check_payments
from bastion.platform.db import plain_dsn
from tests.support.cli import run_bastion
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import payment_method


@pytest.fixture
async def owner(test_database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def books(acquirer: ApiProcess, platform: Platform, vault: ApiProcess, merchant: Credentials) -> dict[str, Any]:
    """One merchant's payments of every kind; their ids."""

    async def method(number: str = "4242424242424242") -> str:
        return await payment_method(platform, vault, merchant, number)

    async with platform.client(merchant) as client:

        async def intent(**body: Any) -> dict[str, Any]:
            answer = await client.post("/v1/payment_intents", json={"currency": "EUR", "confirm": True, **body})
            found: dict[str, Any] = answer.json() if answer.status_code == 200 else answer.json()["error"]["payment_intent"]
            return found

        paid = await intent(amount=2500, payment_method=await method())
        part = await intent(amount=4000, payment_method=await method(), capture_method="manual")
        await client.post(f"/v1/payment_intents/{part['id']}/capture", json={"amount_to_capture": 1000})
        held = await intent(amount=900, payment_method=await method(), capture_method="manual")
        voided = await intent(amount=700, payment_method=await method(), capture_method="manual")
        await client.post(f"/v1/payment_intents/{voided['id']}/cancel")
        await intent(amount=300, payment_method=await method("4000000000000002"))
        refund = (await client.post("/v1/refunds", json={"payment_intent": paid["id"], "amount": 600})).json()
    return {"paid": paid, "held": held, "refund": refund}


async def _check(owner: asyncpg.Connection) -> Disagreement | PaymentsSummary:
    async with owner.transaction(isolation="repeatable_read", readonly=True):
        return await check_payments(owner, await owner.fetchval("SELECT now()"))


async def test_payments_of_every_kind_agree_with_the_ledger(books: dict[str, Any], owner: asyncpg.Connection) -> None:
    result = await _check(owner)
    assert isinstance(result, PaymentsSummary), result
    assert result.intents >= 5
    assert result.refunds >= 1


async def test_a_charge_refunded_behind_bastions_back_is_named(
    books: dict[str, Any], owner: asyncpg.Connection, test_database: TestDatabase
) -> None:
    charge = books["paid"]["latest_charge"]
    await owner.execute("UPDATE charges SET amount_refunded = amount_refunded + 1 WHERE id = $1", charge)
    try:
        result = await _check(owner)
        assert isinstance(result, Disagreement)
        assert result.subject == charge
        ran = await run_bastion("payments", "check", env=test_database.env())
        assert ran.returncode == 1
        assert ran.stderr.strip() == f"error: payments check failed: {charge}: amount_refunded is 601, its refunds add up to 600"
    finally:
        await owner.execute("UPDATE charges SET amount_refunded = amount_refunded - 1 WHERE id = $1", charge)


async def test_books_that_disagree_with_the_objects_are_named(
    books: dict[str, Any], owner: asyncpg.Connection, merchant: Credentials
) -> None:
    await owner.execute("UPDATE charges SET fee = fee + 1 WHERE id = $1", books["paid"]["latest_charge"])
    try:
        result = await _check(owner)
        assert isinstance(result, Disagreement)
        assert result.subject == f"{merchant.merchant_id} EUR test"
        assert result.message.startswith("balance_pending holds")
    finally:
        await owner.execute("UPDATE charges SET fee = fee - 1 WHERE id = $1", books["paid"]["latest_charge"])
    await owner.execute("UPDATE payment_intents SET amount_capturable = 0 WHERE id = $1", books["held"]["id"])
    try:
        result = await _check(owner)
        assert isinstance(result, Disagreement)
        assert result.message.startswith("acquirer_receivable holds")
    finally:
        await owner.execute("UPDATE payment_intents SET amount_capturable = amount WHERE id = $1", books["held"]["id"])
    assert isinstance(await _check(owner), PaymentsSummary)
