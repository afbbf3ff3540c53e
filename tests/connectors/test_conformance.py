"""One conformance suite for every connector, the sandbox acquirer's included: each test runs
through the whole API (the vault's forward, the connector, the processor's local server) with
a PaymentIntent pinned to a connector account of the processor under test, and each provider's
own record is the judge of what was charged. A new connector is done when it passes here
(docs/connectors.md, How to add a connector)."""

import base64
import dataclasses
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import asyncpg
import httpx
import orjson
import pytest

from bastion.api.app import create_app
from bastion.connectors import KINDS
from bastion.kernel.errors import ProcessorUnavailable
from bastion.payments import intents, refunds
from bastion.payments.connectors import Answer, AttemptResult, Authorization, Connector
from bastion.payments.directory import ConnectorDirectory
from bastion.payments.jobs import sync_unknown_attempts
from bastion.platform.db import Tenant, plain_dsn
from bastion.platform.idempotency import PhasedCommands
from bastion.platform.settings import Settings
from tests.connectors.conftest import LocalBraintree, LocalStripe, ServedAdyen
from tests.support.acquirer import NOTIFICATIONS_PATH, deliver, notifications_of, signed
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.providers.adyen import API_KEY, HMAC_KEY, MERCHANT_ACCOUNT, body_of, psp_reference
from tests.support.providers.braintree import Merchant
from tests.support.providers.stripe import Chaos, signature_header
from tests.support.vault import CHALLENGED, DISPUTED, VISA, payment_method

RETURN_URL = "https://shop.test/orders/7"
DAY_S = 86_400
# The sandbox's test cards and the decline each must come back as, whatever the processor.
DECLINES = [
    ("4000000000000002", "card_declined", "generic_decline"),
    ("4000000000009995", "card_declined", "insufficient_funds"),
    ("4000000000009987", "card_declined", "lost_card"),
    ("4000000000000069", "card_declined", "expired_card"),
]


class Provider(Protocol):
    """What the suite needs of a processor's local server."""

    name: str
    # Whether Bastion can ask the processor what became of an attempt (Adyen's Checkout cannot:
    # its notification settles it).
    syncs: bool

    def account(self) -> dict[str, Any]:
        """The body of POST /v1/connector_accounts for an account there."""
        ...

    async def charged(self, charge_id: str) -> int:
        """How many payments the processor made for Bastion's charge: more than one is a double charge."""
        ...

    async def refunds(self, charge_id: str, refund_id: str) -> int:
        """How many refunds the processor made for Bastion's refund of the charge."""
        ...

    async def notification(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]]:
        """A notification of the charge's authorization as the processor sends it: path, body, headers."""
        ...

    async def complete_challenge(self, intent: dict[str, Any], account_id: str, client: httpx.AsyncClient) -> None:
        """The cardholder passes the challenge; what the processor then tells Bastion is delivered."""
        ...

    def tampered(self, body: bytes) -> bytes:
        """The notification with a field its signature covers changed (the amount)."""
        ...

    async def disputed(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]]:
        """The cardholder disputes the captured charge as fraud: the processor's notification of it."""
        ...

    async def stale(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]] | None:
        """A notification of the charge signed a day ago; None where the processor signs no time."""
        ...

    def next_authorization_answers(self, status: str) -> bool:
        """The processor's next authorization is made and answered with `status`; False where
        the local server cannot (the suite then says so)."""
        ...


@dataclass
class Sandbox:
    test_database: TestDatabase
    settings: Settings
    name: str = "sandbox"
    syncs: bool = True

    def account(self) -> dict[str, Any]:
        return {"connector": "sandbox", "credentials": {}}

    async def _count(self, query: str, *args: str) -> int:
        connection = await asyncpg.connect(plain_dsn(self.test_database.owner_url))
        try:
            count: int = await connection.fetchval(query, *args)
        finally:
            await connection.close()
        return count

    async def charged(self, charge_id: str) -> int:
        return await self._count("SELECT count(*) FROM acquirer.payments WHERE reference = $1", charge_id)

    async def refunds(self, charge_id: str, refund_id: str) -> int:
        return await self._count("SELECT count(*) FROM acquirer.refunds WHERE reference = $1", refund_id)

    async def notification(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]]:
        body, headers = signed(self.settings, (await notifications_of(self.test_database, charge_id))[0])
        return NOTIFICATIONS_PATH, body, headers

    async def complete_challenge(self, intent: dict[str, Any], account_id: str, client: httpx.AsyncClient) -> None:
        url = urlsplit(intent["next_action"]["redirect_to_url"]["url"])
        token = parse_qs(url.query)["token"][0]
        async with httpx.AsyncClient(base_url=f"{url.scheme}://{url.netloc}", trust_env=False) as browser:
            # The page sends the cardholder back to the shop.
            assert (await browser.post(url.path, data={"token": token, "outcome": "complete"})).status_code == 303
        for notification in await notifications_of(self.test_database, intent["latest_charge"]):
            assert (await deliver(client, self.settings, notification)).status_code == 200

    def tampered(self, body: bytes) -> bytes:
        document = orjson.loads(body)
        document["data"]["amount"] += 1
        return orjson.dumps(document)

    async def stale(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]] | None:
        told = (await notifications_of(self.test_database, charge_id))[0]
        body, headers = signed(self.settings, told, signed_at=int(time.time()) - DAY_S)
        return NOTIFICATIONS_PATH, body, headers

    def next_authorization_answers(self, status: str) -> bool:
        # The acquirer answers its own statuses only (tests/payments/test_sandbox_connector.py maps others).
        return False

    async def disputed(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]]:
        # The acquirer disputes its card 4000 0000 0000 0259 once captured (the suite pays with it).
        told = [n for n in await notifications_of(self.test_database, charge_id) if n["type"] == "dispute.created"]
        body, headers = signed(self.settings, told[0])
        return NOTIFICATIONS_PATH, body, headers


@dataclass
class Adyen:
    served: ServedAdyen
    name: str = "adyen"
    syncs: bool = False

    def account(self) -> dict[str, Any]:
        credentials = {"api_key": API_KEY, "merchant_account": MERCHANT_ACCOUNT, "hmac_key": HMAC_KEY}
        return {"connector": "adyen", "credentials": credentials, "base_url": self.served.server.base_url}

    async def charged(self, charge_id: str) -> int:
        return len(self.served.server.payments_for(charge_id))

    async def refunds(self, charge_id: str, refund_id: str) -> int:
        # The local Adyen keeps a payment's refunded amount: the suite refunds 300 of 1000 once.
        (payment,) = self.served.server.payments_for(charge_id)
        return payment.refunded // 300

    async def notification(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]]:
        (document,) = self.served.server.notifications_for(charge_id)[:1]
        return f"/v1/connectors/adyen/notifications/{account_id}", body_of(document), {"content-type": "application/json"}

    async def complete_challenge(self, intent: dict[str, Any], account_id: str, client: httpx.AsyncClient) -> None:
        (payment,) = self.served.server.payments_for(intent["latest_charge"])
        document = self.served.server.complete_challenge(payment.psp_reference, authenticated=True)
        path = f"/v1/connectors/adyen/notifications/{account_id}"
        assert (await client.post(path, content=body_of(document))).status_code == 200

    def tampered(self, body: bytes) -> bytes:
        document = orjson.loads(body)
        document["notificationItems"][0]["NotificationRequestItem"]["amount"]["value"] += 1
        return orjson.dumps(document)

    async def stale(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]] | None:
        # Adyen's HMAC covers no time: a replay is caught by its id alone (docs/connectors.md, adyen).
        return None

    def next_authorization_answers(self, status: str) -> bool:
        self.served.server.chaos.result_code = status
        return True

    async def disputed(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]]:
        (payment,) = self.served.server.payments_for(charge_id)
        due = datetime.now(UTC) + timedelta(days=7)
        document = self.served.server.notification(
            "NOTIFICATION_OF_CHARGEBACK",
            psp=psp_reference(),
            original_reference=payment.psp_reference,
            merchant_reference=charge_id,
            value=payment.value,
            currency=payment.currency,
            additional_data={
                "chargebackReasonCode": "10.4",
                "chargebackSchemeCode": "visa",
                "defensePeriodEndsAt": due.isoformat(timespec="seconds"),
                "disputeStatus": "Undefended",
            },
        )
        return f"/v1/connectors/adyen/notifications/{account_id}", body_of(document), {"content-type": "application/json"}


@dataclass
class Stripe:
    local: LocalStripe
    name: str = "stripe"
    syncs: bool = True
    secret_key: str = field(default_factory=lambda: f"sk_test_{secrets.token_hex(16)}")
    webhook_secret: str = field(default_factory=lambda: f"whsec_{secrets.token_hex(16)}")

    def account(self) -> dict[str, Any]:
        credentials = {"secret_key": self.secret_key, "webhook_secret": self.webhook_secret}
        return {"connector": "stripe", "credentials": credentials, "base_url": self.local.url}

    def _intents(self, charge_id: str) -> list[dict[str, Any]]:
        intents = self.local.server.account(self.secret_key).payment_intents.values()
        return [intent for intent in intents if intent["metadata"].get("bastion_charge") == charge_id]

    async def charged(self, charge_id: str) -> int:
        return len(self._intents(charge_id))

    async def refunds(self, charge_id: str, refund_id: str) -> int:
        refunds = self.local.server.account(self.secret_key).refunds.values()
        return sum(refund["metadata"].get("bastion_refund") == refund_id for refund in refunds)

    def _signed(self, event: dict[str, Any], account_id: str, *, at: int | None = None) -> tuple[str, bytes, dict[str, str]]:
        body = orjson.dumps(event)
        signature = signature_header(body, self.webhook_secret, timestamp=at)
        headers = {"stripe-signature": signature, "content-type": "application/json"}
        return f"/v1/connectors/stripe/notifications/{account_id}", body, headers

    async def notification(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]]:
        (intent,) = self._intents(charge_id)
        account = self.local.server.account(self.secret_key)
        return self._signed(self.local.server.event(account, "payment_intent.succeeded", intent), account_id)

    async def complete_challenge(self, intent: dict[str, Any], account_id: str, client: httpx.AsyncClient) -> None:
        (challenged,) = self._intents(intent["latest_charge"])
        completed = self.local.server.complete_challenge(self.secret_key, challenged["id"], succeeded=True)
        account = self.local.server.account(self.secret_key)
        path, body, headers = self._signed(self.local.server.event(account, "payment_intent.succeeded", completed), account_id)
        assert (await client.post(path, content=body, headers=headers)).status_code == 200

    def tampered(self, body: bytes) -> bytes:
        event = orjson.loads(body)
        event["data"]["object"]["amount"] += 1
        return orjson.dumps(event)

    async def stale(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]] | None:
        (intent,) = self._intents(charge_id)
        event = self.local.server.event(self.local.server.account(self.secret_key), "payment_intent.succeeded", intent)
        return self._signed(event, account_id, at=int(time.time()) - DAY_S)

    def next_authorization_answers(self, status: str) -> bool:
        self.local.server.arm(Chaos.STATUS, path="/v1/payment_intents", status=status)
        return True

    async def disputed(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]]:
        (intent,) = self._intents(charge_id)
        dispute = self.local.server.open_dispute(self.secret_key, intent["id"])
        account = self.local.server.account(self.secret_key)
        return self._signed(self.local.server.event(account, "charge.dispute.created", dispute), account_id)


@dataclass
class Braintree:
    local: LocalBraintree
    merchant: Merchant
    name: str = "braintree"
    syncs: bool = True

    def account(self) -> dict[str, Any]:
        return {"connector": "braintree", "credentials": self.merchant.credentials, "base_url": self.local.url}

    async def charged(self, charge_id: str) -> int:
        return len(self.local.gateway.sales(self.merchant, charge_id))

    async def refunds(self, charge_id: str, refund_id: str) -> int:
        return len(self.local.gateway.credits(self.merchant, refund_id))

    async def notification(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]]:
        (sale,) = self.local.gateway.sales(self.merchant, charge_id)
        body = self.local.gateway.notification(self.merchant, "transaction_settled", sale.id)
        headers = {"content-type": "application/x-www-form-urlencoded"}
        return f"/v1/connectors/braintree/notifications/{account_id}", body, headers

    async def complete_challenge(self, intent: dict[str, Any], account_id: str, client: httpx.AsyncClient) -> None:
        raise AssertionError("Braintree runs no 3-D Secure challenge on the server side")

    def tampered(self, body: bytes) -> bytes:
        form = dict(parse_qsl(body.decode()))
        xml = base64.b64decode(form["bt_payload"]).decode()
        form["bt_payload"] = base64.encodebytes(xml.replace("<amount>", "<amount>1").encode()).decode("ascii")
        return urlencode(form).encode()

    async def stale(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]] | None:
        (sale,) = self.local.gateway.sales(self.merchant, charge_id)
        # Braintree sends a notification again for up to a day: older than that is a replay.
        at = datetime.now(UTC) - timedelta(days=2)
        body = self.local.gateway.notification(self.merchant, "transaction_settled", sale.id, at=at)
        return f"/v1/connectors/braintree/notifications/{account_id}", body, {"content-type": "application/x-www-form-urlencoded"}

    def next_authorization_answers(self, status: str) -> bool:
        self.local.gateway.fail_next("sale", fields={"status": status})
        return True

    async def disputed(self, charge_id: str, account_id: str) -> tuple[str, bytes, dict[str, str]]:
        (sale,) = self.local.gateway.sales(self.merchant, charge_id)
        dispute = self.local.gateway.open_dispute(sale.id)
        body = self.local.gateway.notification(self.merchant, "dispute_opened", dispute.id)
        headers = {"content-type": "application/x-www-form-urlencoded"}
        return f"/v1/connectors/braintree/notifications/{account_id}", body, headers


@pytest.fixture(params=["sandbox", "stripe", "braintree", "adyen"])
def provider(request: pytest.FixtureRequest, test_database: TestDatabase, settings: Settings) -> Provider:
    if request.param == "sandbox":
        request.getfixturevalue("acquirer")
        return Sandbox(test_database, settings)
    if request.param == "stripe":
        return Stripe(request.getfixturevalue("local_stripe"))
    if request.param == "braintree":
        local: LocalBraintree = request.getfixturevalue("local_braintree")
        # Braintree charges in its merchant account's currency: the suite's payments are in euros.
        return Braintree(local, local.gateway.merchant("EUR"))
    return Adyen(request.getfixturevalue("adyen"))


@dataclass
class Shop:
    """A fresh merchant paying through its one account at the provider under test."""

    platform: Platform
    vault: ApiProcess
    merchant: Credentials
    client: httpx.AsyncClient
    account_id: str

    async def pay(self, number: str = VISA, **fields: Any) -> httpx.Response:
        method = await payment_method(self.platform, self.vault, self.merchant, number=number)
        body = {"amount": 1000, "currency": "EUR", "payment_method": method, "confirm": True, "return_url": RETURN_URL}
        return await self.client.post("/v1/payment_intents", json=body | {"connector_account": self.account_id} | fields)

    async def paid(self, **fields: Any) -> dict[str, Any]:
        answer = await self.pay(**fields)
        assert answer.status_code == 200, answer.text
        intent: dict[str, Any] = answer.json()
        return intent

    async def charge(self, intent: dict[str, Any]) -> dict[str, Any]:
        charge: dict[str, Any] = (await self.client.get(f"/v1/charges/{intent['latest_charge']}")).json()
        return charge


@pytest.fixture
async def shop(provider: Provider, platform: Platform, vault: ApiProcess, merchant: Credentials) -> AsyncIterator[Shop]:
    async with platform.client(merchant) as client:
        created = await client.post("/v1/connector_accounts", json=provider.account())
        assert created.status_code == 200, created.text
        yield Shop(platform, vault, merchant, client, created.json()["id"])


async def test_an_authorization_captured_at_once_charges_once(provider: Provider, shop: Shop) -> None:
    intent = await shop.paid()
    charge = await shop.charge(intent)
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 1000)
    assert (charge["connector"], charge["connector_account"], charge["captured"]) == (provider.name, shop.account_id, True)
    assert charge["connector_reference"]
    assert await provider.charged(charge["id"]) == 1


async def test_a_manual_capture_takes_part_of_the_authorization(provider: Provider, shop: Shop) -> None:
    intent = await shop.paid(capture_method="manual")
    assert (intent["status"], intent["amount_capturable"]) == ("requires_capture", 1000)
    captured = await shop.client.post(f"/v1/payment_intents/{intent['id']}/capture", json={"amount_to_capture": 600})
    assert captured.status_code == 200, captured.text
    assert (captured.json()["status"], captured.json()["amount_received"]) == ("succeeded", 600)
    assert await provider.charged(intent["latest_charge"]) == 1


async def test_a_cancel_voids_the_authorization(provider: Provider, shop: Shop) -> None:
    intent = await shop.paid(capture_method="manual")
    canceled = await shop.client.post(f"/v1/payment_intents/{intent['id']}/cancel", json={})
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"


async def test_refunds_in_parts(provider: Provider, shop: Shop) -> None:
    intent = await shop.paid()
    for amount in (300, 200):
        refund = await shop.client.post("/v1/refunds", json={"payment_intent": intent["id"], "amount": amount})
        assert refund.status_code == 200, refund.text
        assert refund.json()["status"] == "succeeded"
    assert (await shop.charge(intent))["amount_refunded"] == 500
    assert await provider.charged(intent["latest_charge"]) == 1


@pytest.mark.parametrize(("number", "code", "decline_code"), DECLINES, ids=[number for number, *_ in DECLINES])
async def test_each_decline_comes_back_as_the_same_card_error(
    provider: Provider, shop: Shop, number: str, code: str, decline_code: str
) -> None:
    declined = await shop.pay(number)
    assert declined.status_code == 402, declined.text
    error = declined.json()["error"]
    assert (error["code"], error["decline_code"]) == (code, decline_code)
    assert error["payment_intent"]["status"] == "requires_payment_method"


async def test_a_challenge_waits_for_the_cardholder_then_the_processor_tells(provider: Provider, shop: Shop) -> None:
    if not KINDS[provider.name].capabilities.three_d_secure:
        # A connector that runs no challenge declines the card whose issuer asks for one.
        declined = await shop.pay(CHALLENGED)
        assert (declined.status_code, declined.json()["error"]["decline_code"]) == (402, "authentication_required")
        return
    intent = await shop.paid(number=CHALLENGED)
    assert intent["status"] == "requires_action"
    assert intent["next_action"]["redirect_to_url"]["url"].startswith("http")
    async with shop.platform.client() as anonymous:
        await provider.complete_challenge(intent, shop.account_id, anonymous)
    after = (await shop.client.get(f"/v1/payment_intents/{intent['id']}")).json()
    assert after["status"] == "succeeded"
    assert await provider.charged(intent["latest_charge"]) == 1


async def test_a_notification_is_taken_once_and_a_tampered_one_is_refused(provider: Provider, shop: Shop) -> None:
    intent = await shop.paid()
    path, body, headers = await provider.notification(intent["latest_charge"], shop.account_id)
    tampered = provider.tampered(body)
    async with shop.platform.client() as anonymous:
        first = await anonymous.post(path, content=body, headers=headers)
        again = await anonymous.post(path, content=body, headers=headers)
        refused = await anonymous.post(path, content=tampered, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["result"] == "duplicate"
    assert refused.status_code == 401


async def test_a_dispute_told_by_the_processor_opens_once(provider: Provider, shop: Shop) -> None:
    intent = await shop.paid(number=DISPUTED)
    path, body, headers = await provider.disputed(intent["latest_charge"], shop.account_id)
    async with shop.platform.client() as anonymous:
        opened = await anonymous.post(path, content=body, headers=headers)
        again = await anonymous.post(path, content=body, headers=headers)
    assert (opened.status_code, opened.json()["result"]) == (200, "applied"), opened.text
    assert again.json()["result"] == "duplicate"
    disputes = (await shop.client.get("/v1/disputes", params={"charge": intent["latest_charge"]})).json()["data"]
    assert [(dispute["status"], dispute["amount"]) for dispute in disputes] == [("needs_response", 1000)]
    assert (await shop.charge(intent))["disputed"] is True


class _AnswerLost:
    """A connector whose authorization reaches its processor and whose answer is lost."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self.name = connector.name
        self.capabilities = connector.capabilities

    async def authorize(self, tenant: Tenant, request: Authorization) -> Answer:
        answered = await self._connector.authorize(tenant, request)
        return Answer(AttemptResult.UNKNOWN, reference=answered.reference)


@dataclass
class _LosingAnswers:
    """The install's connectors, each losing its authorizations' answers."""

    directory: ConnectorDirectory

    async def of(self, tenant: Tenant, account_id: str | None) -> _AnswerLost:
        return _AnswerLost(await self.directory.of(tenant, account_id))


async def test_a_lost_answer_is_settled_by_a_sync_or_the_processors_word(provider: Provider, shop: Shop) -> None:
    services = shop.platform.services
    confirm = intents.confirm_phases(services.database, cast(Any, _LosingAnswers(services.connectors)), None, services.velocity)
    registry = dict(services.commands.registry) | {intents.CONFIRM: confirm}
    commands = PhasedCommands(services.database, registry, hold_timeout_s=services.commands.hold_timeout_s)
    transport = httpx.ASGITransport(app=create_app(dataclasses.replace(services, commands=commands)), client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bastion.test", headers=shop.merchant.headers) as blind:
        method = await payment_method(shop.platform, shop.vault, shop.merchant)
        body = {
            "amount": 1000,
            "currency": "EUR",
            "payment_method": method,
            "confirm": True,
            "connector_account": shop.account_id,
        }
        unknown = (await blind.post("/v1/payment_intents", json=body)).json()
    assert unknown["status"] == "processing"
    await sync_unknown_attempts(services.commands, after=timedelta(0))
    if not provider.syncs:
        # No look-up at this processor: the attempt waits for its word, which settles it.
        assert (await shop.client.get(f"/v1/payment_intents/{unknown['id']}")).json()["status"] == "processing"
        path, told, headers = await provider.notification(unknown["latest_charge"], shop.account_id)
        async with shop.platform.client() as anonymous:
            assert (await anonymous.post(path, content=told, headers=headers)).json()["result"] == "applied"
    settled = (await shop.client.get(f"/v1/payment_intents/{unknown['id']}")).json()
    assert (settled["status"], settled["amount_received"]) == ("succeeded", 1000)
    assert await provider.charged(unknown["latest_charge"]) == 1


class _RefundAnswerLostOnce:
    """A connector whose first refund reaches its processor and whose answer is lost."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self.name = connector.name
        self.capabilities = connector.capabilities
        self.sync_refund = connector.sync_refund
        self.lost = False

    async def refund(self, tenant: Tenant, refund_id: str, reference: str, amount: int) -> Answer:
        answered = await self._connector.refund(tenant, refund_id, reference, amount)
        if not self.lost:
            self.lost = True
            raise ProcessorUnavailable("The answer was lost.")
        return answered


@dataclass
class _LosingRefundOnce:
    directory: ConnectorDirectory
    losing: dict[str, _RefundAnswerLostOnce] = field(default_factory=dict)

    async def of(self, tenant: Tenant, account_id: str | None) -> _RefundAnswerLostOnce:
        key = account_id or "sandbox"
        if key not in self.losing:
            self.losing[key] = _RefundAnswerLostOnce(await self.directory.of(tenant, account_id))
        return self.losing[key]


async def test_a_refund_resumed_after_its_answer_was_lost_refunds_once(provider: Provider, shop: Shop) -> None:
    services = shop.platform.services
    intent = await shop.paid()
    refund = refunds.refund_phases(cast(Any, _LosingRefundOnce(services.connectors)))
    registry = dict(services.commands.registry) | {refunds.CREATE_REFUND: refund}
    commands = PhasedCommands(services.database, registry, hold_timeout_s=0)
    transport = httpx.ASGITransport(app=create_app(dataclasses.replace(services, commands=commands)), client=("127.0.0.1", 50000))
    body = {"payment_intent": intent["id"], "amount": 300}
    key = {"Idempotency-Key": f"refund-{intent['id']}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://bastion.test", headers=shop.merchant.headers) as client:
        lost = await client.post("/v1/refunds", json=body, headers=key)
        assert lost.status_code == 502, lost.text
        resumed = await client.post("/v1/refunds", json=body, headers=key)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "succeeded"
    assert await provider.refunds(intent["latest_charge"], resumed.json()["id"]) == 1
    assert (await shop.charge(intent))["amount_refunded"] == 300


async def test_a_stale_notification_is_refused(provider: Provider, shop: Shop) -> None:
    intent = await shop.paid()
    stale = await provider.stale(intent["latest_charge"], shop.account_id)
    if stale is None:
        pytest.skip(f"{provider.name} signs no time in its notifications: a replay is caught by its id")
    path, body, headers = stale
    async with shop.platform.client() as anonymous:
        refused = await anonymous.post(path, content=body, headers=headers)
    assert refused.status_code == 401, refused.text


@pytest.mark.parametrize("status", ["requires_quantum_entanglement", "AUTHORISED", "settled_yesterday"])
async def test_a_status_the_connector_does_not_know_leaves_the_attempt_unknown(
    provider: Provider, shop: Shop, status: str
) -> None:
    if not provider.next_authorization_answers(status):
        pytest.skip(f"the {provider.name} server answers its own statuses only")
    answer = await shop.pay()
    assert answer.status_code == 200, answer.text
    intent = answer.json()
    charge = await shop.charge(intent)
    assert (intent["status"], charge["status"], charge["outcome"]["type"]) == ("processing", "pending", "unknown")
    assert await provider.charged(charge["id"]) == 1
