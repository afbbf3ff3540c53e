"""Disputes end to end: the sandbox acquirer's card 4000 0000 0000 0259 is disputed once
captured; its notification opens the dispute in Bastion, setting the funds aside (a hold on the
available balance) and taking the dispute fee; evidence submitted through the API goes to the
acquirer, whose issuer decides (winning evidence wins) and says so in a notification; a won
dispute gives the funds back, a lost one pays them out; accepting it loses it at once. Every
order of the notifications ends in the same state, and the books agree throughout."""

import asyncio
import itertools
from typing import Any

import asyncpg
import httpx
import pytest

from bastion.payments.check import PaymentsSummary, check_payments
from bastion.platform.db import plain_dsn
from bastion.platform.settings import Settings
from tests.support.acquirer import deliver, notifications_of
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import DISPUTED, paid_intent

# The session's acquirer decides on evidence after a second (BASTION_ACQUIRER_DISPUTE_REVIEW_S) and looks every second.
DECISION_WAIT_S = 15
DISPUTE_FEE = 1500


@pytest.fixture
async def payer(acquirer: ApiProcess, merchant: Credentials) -> Credentials:
    return merchant


async def _delivered(platform: Platform, settings: Settings, notifications: list[dict[str, Any]]) -> list[str]:
    async with platform.client() as client:
        answers = [await deliver(client, settings, notification) for notification in notifications]
    assert all(answer.status_code == 200 for answer in answers), [answer.text for answer in answers]
    return [answer.json()["result"] for answer in answers]


async def _of_type(test_database: TestDatabase, charge_id: str, kind: str) -> list[dict[str, Any]]:
    return [n for n in await notifications_of(test_database, charge_id) if n["type"] == kind]


async def _opened(
    platform: Platform, vault: ApiProcess, payer: Credentials, settings: Settings, test_database: TestDatabase
) -> dict[str, Any]:
    """A payment disputed once captured, its dispute opened in Bastion by the notification."""
    intent = await paid_intent(platform, vault, payer, amount=5000, number=DISPUTED)
    created = await _of_type(test_database, intent["latest_charge"], "dispute.created")
    assert len(created) == 1
    assert await _delivered(platform, settings, created) == ["applied"]
    async with platform.client(payer) as client:
        listed = (await client.get("/v1/disputes", params={"charge": intent["latest_charge"]})).json()
    assert len(listed["data"]) == 1
    dispute: dict[str, Any] = listed["data"][0]
    return dispute


async def _books(test_database: TestDatabase, merchant: Credentials) -> dict[str, tuple[int, int]]:
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        rows = await connection.fetch(
            "SELECT a.name, sum(b.credits_posted - b.debits_posted) AS posted, "
            "sum(b.credits_pending - b.debits_pending) AS pending "
            "FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id "
            "WHERE a.merchant_id = $1 AND a.code LIKE 'payments.%' GROUP BY a.name",
            merchant.merchant_id,
        )
    finally:
        await connection.close()
    return {row["name"]: (row["posted"], row["pending"]) for row in rows}


async def _checked(platform: Platform) -> None:
    async with platform.owner.transaction() as connection:
        checked = await check_payments(connection, platform.clock.now())
    assert isinstance(checked, PaymentsSummary), checked


async def _decision(platform: Platform, settings: Settings, test_database: TestDatabase, charge_id: str) -> None:
    """Wait for the issuer's decision at the acquirer, then deliver it."""
    for _ in range(DECISION_WAIT_S * 10):
        closed = await _of_type(test_database, charge_id, "dispute.closed")
        if closed:
            assert await _delivered(platform, settings, closed) == ["applied"]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the acquirer did not decide the dispute")


async def test_a_dispute_opens_with_its_funds_held_and_its_fee(
    payer: Credentials, platform: Platform, vault: ApiProcess, settings: Settings, test_database: TestDatabase
) -> None:
    dispute = await _opened(platform, vault, payer, settings, test_database)
    assert dispute["id"].startswith("dp_")
    assert (dispute["status"], dispute["amount"], dispute["currency"], dispute["reason"]) == (
        "needs_response",
        5000,
        "EUR",
        "fraudulent",
    )
    details = dispute["evidence_details"]
    assert (details["has_evidence"], details["past_due"], details["submission_count"]) == (False, False, 0)
    # Due a week after the acquirer opened it, which is a moment before Bastion heard of it: the
    # two whole seconds may differ by one when a second turns in between.
    assert 7 * 86_400 - 1 <= details["due_by"] - dispute["created"] <= 7 * 86_400
    async with platform.client(payer) as client:
        charge = (await client.get(f"/v1/charges/{dispute['charge']}")).json()
        assert charge["disputed"] is True
        refused = await client.post("/v1/refunds", json={"charge": dispute["charge"]})
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, "charge_disputed")
        events = (await client.get("/v1/events", params={"type": "charge.dispute.created"})).json()
    assert any(event["data"]["object"]["id"] == dispute["id"] for event in events["data"])
    # 2.9 % of 50.00 + 0.30 is the capture's fee; the dispute holds 50.00 and costs 15.00.
    assert (await _books(test_database, payer))["balance_available"] == (-DISPUTE_FEE, -5000)
    await _checked(platform)


@pytest.mark.parametrize(
    ("text", "status", "available"), [("winning_evidence", "won", 0), ("here is the receipt", "lost", -5000)]
)
async def test_submitted_evidence_is_reviewed_and_the_decision_moves_the_funds(
    *,
    payer: Credentials,
    platform: Platform,
    vault: ApiProcess,
    settings: Settings,
    test_database: TestDatabase,
    text: str,
    status: str,
    available: int,
) -> None:
    dispute = await _opened(platform, vault, payer, settings, test_database)
    async with platform.client(payer) as client:
        kept = await client.post(f"/v1/disputes/{dispute['id']}", json={"evidence": {"customer_name": "Ada Lovelace"}})
        assert (kept.json()["status"], kept.json()["evidence"]) == ("needs_response", {"customer_name": "Ada Lovelace"})
        submitted = await client.post(
            f"/v1/disputes/{dispute['id']}", json={"evidence": {"uncategorized_text": text}, "submit": True}
        )
        assert submitted.status_code == 200, submitted.text
    answered = submitted.json()
    assert (answered["status"], answered["evidence_details"]["submission_count"]) == ("under_review", 1)
    assert answered["evidence"] == {"customer_name": "Ada Lovelace", "uncategorized_text": text}
    await _decision(platform, settings, test_database, dispute["charge"])
    async with platform.client(payer) as client:
        closed = (await client.get(f"/v1/disputes/{dispute['id']}")).json()
        late = await client.post(f"/v1/disputes/{dispute['id']}", json={"evidence": {"uncategorized_text": "more"}})
        events = (await client.get("/v1/events", params={"type": "charge.dispute.closed"})).json()
    assert closed["status"] == status
    assert (late.status_code, late.json()["error"]["code"]) == (400, "dispute_unexpected_state")
    assert any(event["data"]["object"]["id"] == dispute["id"] for event in events["data"])
    assert (await _books(test_database, payer))["balance_available"] == (available - DISPUTE_FEE, 0)
    await _checked(platform)


async def test_accepting_a_dispute_loses_it_at_once(
    payer: Credentials, platform: Platform, vault: ApiProcess, settings: Settings, test_database: TestDatabase
) -> None:
    dispute = await _opened(platform, vault, payer, settings, test_database)
    async with platform.client(payer) as client:
        closed = await client.post(f"/v1/disputes/{dispute['id']}/close")
        again = await client.post(f"/v1/disputes/{dispute['id']}/close")
    assert closed.json()["status"] == "lost"
    assert (again.status_code, again.json()["error"]["code"]) == (400, "dispute_unexpected_state")
    # The acquirer's notification of it comes after: Bastion knows it already.
    assert await _delivered(platform, settings, await _of_type(test_database, dispute["charge"], "dispute.closed")) == ["ignored"]
    assert (await _books(test_database, payer))["balance_available"] == (-5000 - DISPUTE_FEE, 0)
    await _checked(platform)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"evidence": {"receipt": "x"}}, "evidence[receipt]"),
        ({"evidence": {"uncategorized_text": "x" * 20_001}}, "evidence[uncategorized_text]"),
        ({"evidence": {"customer_name": "4242 4242 4242 4242"}}, "evidence[customer_name]"),
        ({"submit": "yes"}, "submit"),
    ],
)
async def test_bad_evidence_is_refused_naming_the_field_and_nothing_is_kept(
    *,
    payer: Credentials,
    platform: Platform,
    vault: ApiProcess,
    settings: Settings,
    test_database: TestDatabase,
    body: dict[str, Any],
    param: str,
) -> None:
    dispute = await _opened(platform, vault, payer, settings, test_database)
    async with platform.client(payer) as client:
        refused = await client.post(f"/v1/disputes/{dispute['id']}", json=body)
        after = (await client.get(f"/v1/disputes/{dispute['id']}")).json()
        missing = await client.get("/v1/disputes/dp_nothing")
    assert (refused.status_code, refused.json()["error"]["param"]) == (400, param)
    assert after == dispute
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "resource_missing")


async def _acquirer_client(test_database: TestDatabase, settings: Settings) -> httpx.AsyncClient:
    from bastion import bootstrap
    from bastion.platform.certs import CertPaths, private_ca_client_context

    secret = bootstrap.acquirer_api_key(bootstrap.acquirer_grant(settings, test_database.owner_url))
    return httpx.AsyncClient(
        base_url=test_database.acquirer_url,
        verify=private_ca_client_context(CertPaths.under(test_database.data_dir)),
        headers={"Authorization": f"Bearer {secret}"},
        trust_env=False,
    )


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
async def test_every_order_of_a_disputes_notifications_ends_in_the_same_state(
    *,
    payer: Credentials,
    platform: Platform,
    vault: ApiProcess,
    settings: Settings,
    test_database: TestDatabase,
    order: tuple[int, ...],
) -> None:
    """Created, in review and won, each sent twice, in every order, to a Bastion that heard none
    of them: the evidence went to the acquirer another way (its own dashboard, say)."""
    intent = await paid_intent(platform, vault, payer, amount=2500, number=DISPUTED)
    charge_id = intent["latest_charge"]
    opened = (await _of_type(test_database, charge_id, "dispute.created"))[0]
    async with await _acquirer_client(test_database, settings) as acquirer:
        answer = await acquirer.post(
            f"/v1/disputes/{opened['data']['id']}/evidence",
            json={"evidence": {"uncategorized_text": "winning_evidence"}, "submit": True},
            headers={"Idempotency-Key": f"dashboard-{charge_id}"},
        )
    assert answer.json()["status"] == "under_review"
    for _ in range(DECISION_WAIT_S * 10):
        if await _of_type(test_database, charge_id, "dispute.closed"):
            break
        await asyncio.sleep(0.1)
    told = [*(await notifications_of(test_database, charge_id))]
    about_dispute = [n for n in told if n["type"].startswith("dispute.")]
    assert [n["type"] for n in about_dispute] == ["dispute.created", "dispute.updated", "dispute.closed"]
    results = await _delivered(platform, settings, [about_dispute[index] for index in order * 2])
    assert results[3:] == ["duplicate"] * 3
    async with platform.client(payer) as client:
        disputes = (await client.get("/v1/disputes", params={"charge": charge_id})).json()["data"]
    assert [(d["status"], d["amount"]) for d in disputes] == [("won", 2500)]
    await _checked(platform)
