"""The acquirer's notifications at Bastion's door (`POST /v1/connectors/sandbox/notifications`):
refused unless signed with the install's secret within five minutes, taken once by their id,
and applied only to what still waits for the acquirer's word, so that a lost answer is settled
by its notification and every order of the notifications ends in the same state."""

import itertools
import time
from typing import Any

import orjson
import pytest

from bastion.payments.check import PaymentsSummary, check_payments
from bastion.payments.sandbox import SIGNATURE_HEADER
from bastion.platform.settings import Settings
from bastion.platform.signatures import sign
from tests.support.acquirer import NOTIFICATIONS_PATH, blind_client, deliver, notification_secret, notifications_of
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import DISPUTED, payment_method


@pytest.fixture
async def payer(acquirer: ApiProcess, merchant: Credentials) -> Credentials:
    return merchant


async def _checked(platform: Platform) -> None:
    async with platform.owner.transaction() as connection:
        checked = await check_payments(connection, platform.clock.now())
    assert isinstance(checked, PaymentsSummary), checked


async def _paid(platform: Platform, vault: ApiProcess, payer: Credentials) -> dict[str, Any]:
    """A payment authorized, captured in part and refunded in part, every answer heard; its card
    is disputed at the acquirer once captured, which Bastion has not heard yet."""
    method = await payment_method(platform, vault, payer, number=DISPUTED)
    async with platform.client(payer) as client:
        body = {"amount": 1000, "currency": "EUR", "payment_method": method, "confirm": True, "capture_method": "manual"}
        intent = (await client.post("/v1/payment_intents", json=body)).json()
        captured = await client.post(f"/v1/payment_intents/{intent['id']}/capture", json={"amount_to_capture": 700})
        assert captured.status_code == 200, captured.text
        refunded = await client.post("/v1/refunds", json={"payment_intent": intent["id"], "amount": 300})
        assert refunded.status_code == 200, refunded.text
        return {
            "intent": (await client.get(f"/v1/payment_intents/{intent['id']}")).json(),
            "charge": (await client.get(f"/v1/charges/{intent['latest_charge']}")).json(),
            "refund": refunded.json(),
        }


async def test_unsigned_forged_stale_or_unreadable_notifications_are_refused(
    payer: Credentials, platform: Platform, vault: ApiProcess, settings: Settings, test_database: TestDatabase
) -> None:
    paid = await _paid(platform, vault, payer)
    notification = (await notifications_of(test_database, paid["charge"]["id"]))[0]
    body = orjson.dumps(notification)
    async with platform.client() as client:
        unsigned = await client.post(NOTIFICATIONS_PATH, content=body)
        forged = await client.post(
            NOTIFICATIONS_PATH, content=body, headers={SIGNATURE_HEADER: sign(b"0" * 32, body, int(time.time()))}
        )
        stale = await deliver(client, settings, notification, signed_at=int(time.time()) - 600)
        tampered_body = orjson.dumps(notification | {"merchant": "mer_someone_else"})
        # The acquirer's own signature, of the body before it was changed.
        genuine = sign(notification_secret(settings), body, int(time.time()))
        tampered = await client.post(NOTIFICATIONS_PATH, content=tampered_body, headers={SIGNATURE_HEADER: genuine})
        unreadable = await deliver(client, settings, notification | {"type": "payment.exploded"})
        no_data = await deliver(client, settings, {key: value for key, value in notification.items() if key != "data"})
    for refused in (unsigned, forged, stale, tampered):
        assert refused.status_code == 401, refused.text
    assert (unreadable.status_code, unreadable.json()["error"]["param"]) == (400, "type")
    assert (no_data.status_code, no_data.json()["error"]["param"]) == (400, "data")


async def test_a_lost_answer_is_settled_by_its_notification_once(
    payer: Credentials, platform: Platform, vault: ApiProcess, settings: Settings, test_database: TestDatabase
) -> None:
    method = await payment_method(platform, vault, payer)
    async with blind_client(platform.services, payer) as blind:
        body = {"amount": 1500, "currency": "KWD", "payment_method": method, "confirm": True}
        intent = (await blind.post("/v1/payment_intents", json=body)).json()
    assert intent["status"] == "processing"
    notified = await notifications_of(test_database, intent["latest_charge"])
    assert [notification["type"] for notification in notified] == ["payment.captured"]
    async with platform.client(payer) as client:
        # Another amount than the charge's is not applied: the integrity check of every answer.
        other_amount = notified[0] | {"id": "acqn_forged", "data": notified[0]["data"] | {"amount": 1499}}
        assert (await deliver(client, settings, other_amount)).json()["result"] == "ignored"
        assert (await client.get(f"/v1/payment_intents/{intent['id']}")).json()["status"] == "processing"
        answers = [(await deliver(client, settings, notified[0])).json()["result"] for _ in range(3)]
        assert answers == ["applied", "duplicate", "duplicate"]
        settled = (await client.get(f"/v1/payment_intents/{intent['id']}")).json()
    assert (settled["status"], settled["amount_received"]) == ("succeeded", 1500)
    await _checked(platform)


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
async def test_every_order_of_the_notifications_ends_in_the_same_state(
    *,
    payer: Credentials,
    platform: Platform,
    vault: ApiProcess,
    settings: Settings,
    test_database: TestDatabase,
    order: tuple[int, ...],
) -> None:
    """Authorized, captured, refunded and disputed, each sent twice, in every order: the first
    three confirm what Bastion recorded from the answers and change nothing; the dispute opens,
    once, whenever it comes."""
    paid = await _paid(platform, vault, payer)
    told = [
        *await notifications_of(test_database, paid["charge"]["id"]),
        *await notifications_of(test_database, paid["refund"]["id"]),
    ]
    # The capture and the dispute it opens are told in one transaction, in no particular order.
    kinds = ["payment.authorized", "payment.captured", "dispute.created", "refund.succeeded"]
    notifications = sorted(told, key=lambda notification: kinds.index(notification["type"]))
    assert [notification["type"] for notification in notifications] == kinds
    async with platform.client(payer) as client:
        results = [(await deliver(client, settings, notifications[index])).json()["result"] for index in order * 2]
        after = {
            "intent": (await client.get(f"/v1/payment_intents/{paid['intent']['id']}")).json(),
            "charge": (await client.get(f"/v1/charges/{paid['charge']['id']}")).json(),
            "refund": (await client.get(f"/v1/refunds/{paid['refund']['id']}")).json(),
        }
        disputes = (await client.get("/v1/disputes", params={"charge": paid["charge"]["id"]})).json()["data"]
    expected = ["applied" if kinds[index] == "dispute.created" else "ignored" for index in order]
    assert results == expected + ["duplicate"] * 4
    assert after == paid | {"charge": paid["charge"] | {"disputed": True}}
    assert [(dispute["status"], dispute["amount"]) for dispute in disputes] == [("needs_response", 700)]
    await _checked(platform)
