"""Payments against a model, step by step, through the real API, vault and sandbox acquirer.

Hypothesis drives random sequences of payments (captured at once or authorized, with a card
that pays, one that is declined, or one whose issuer asks for 3-D Secure), payments whose
answer is lost, the challenge completed or failed, captures in full or in part, cancels,
refunds in full or in part, illegal requests, replays with the same Idempotency-Key, the
acquirer's notifications delivered in any order and again, and syncs. A model predicts each
answer. After every step: each intent reads as the model says, none is left `processing`
unless its answer is still on its way, the acquirer's own record of each payment (status,
captured, refunded) is Bastion's, and `bastion payments check` proves the books (captured <=
authorized, refunded <= captured, each authorization released once, every currency summing
to zero).
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import hypothesis
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from bastion import bootstrap
from bastion.api.app import create_app
from bastion.api.context import Services
from bastion.kernel.ids import new_id
from bastion.payments.check import PaymentsSummary, check_payments
from bastion.payments.jobs import sync_unknown_attempts
from bastion.platform.db import plain_dsn
from bastion.platform.settings import Settings
from bastion.platform.vault_client import CLIENT_KEEP_ALIVE_S
from tests.support.acquirer import blind_client, deliver, notifications_to
from tests.support.loop import LoopThread
from tests.support.platform import Credentials
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import CHALLENGED, card

PAYS = "4242424242424242"
DECLINED = "4000000000000002"
CARDS = {"pays": PAYS, "declined": DECLINED, "challenged": CHALLENGED}
AMOUNT_MAX = 5_000


@dataclass
class Payment:
    """What the model expects of one intent, and of its payment at the acquirer."""

    id: str
    charge: str
    amount: int
    status: str
    at_acquirer: str
    manual: bool
    capturable: int = 0
    received: int = 0
    refunded: int = 0
    # Where the customer completes a challenge (requires_action).
    challenge: str | None = None
    # Bastion waits for the acquirer's word, which the acquirer has given (its answer was lost).
    answer_lost: bool = False


@dataclass
class World:
    loop: LoopThread
    api: httpx.AsyncClient
    # The same API, whose confirms never hear the acquirer's answer.
    blind: httpx.AsyncClient
    vault: httpx.AsyncClient
    database: TestDatabase
    services: Services
    settings: Settings
    merchant_id: str


def _settled(payment: Payment, *, authenticated: bool = True) -> None:
    """The model of an attempt whose outcome Bastion has now heard."""
    payment.answer_lost, payment.challenge = False, None
    if not authenticated:
        payment.status, payment.at_acquirer = "requires_payment_method", "declined"
    elif payment.manual:
        payment.status, payment.at_acquirer, payment.capturable = "requires_capture", "authorized", payment.amount
    else:
        payment.status, payment.at_acquirer, payment.received = "succeeded", "captured", payment.amount


class PaymentsMachine(RuleBasedStateMachine):
    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.payments: list[Payment] = []
        # How each answered challenge ended, until Bastion hears it.
        self.authenticated: dict[str, bool] = {}
        # The last request sent, to replay with its key.
        self.last: tuple[str, dict[str, Any], str, httpx.Response] | None = None

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        key = new_id("req")
        answer = self.world.loop.run(self.world.api.post(path, json=body, headers={"Idempotency-Key": key}))
        self.last = (path, body, key, answer)
        return answer

    def _method(self, number: str) -> str:
        async def make() -> str:
            token = await self.world.vault.post("/v1/tokens", json={"card": card(number=number)})
            assert token.status_code == 200, token.text
            method = await self.world.api.post(
                "/v1/payment_methods", json={"type": "card", "card": {"token": token.json()["id"]}}
            )
            assert method.status_code == 200, method.text
            created: str = method.json()["id"]
            return created

        return self.world.loop.run(make())

    def _with(self, predicate: Any) -> list[Payment]:
        return [payment for payment in self.payments if predicate(payment)]

    @rule(amount=st.integers(1, AMOUNT_MAX), manual=st.booleans(), card=st.sampled_from(sorted(CARDS)))
    def pay(self, amount: int, manual: bool, card: str) -> None:
        body = {
            "amount": amount,
            "currency": "EUR",
            "payment_method": self._method(CARDS[card]),
            "capture_method": "manual" if manual else "automatic",
            "confirm": True,
            "return_url": "https://shop.test/done",
        }
        answer = self._post("/v1/payment_intents", body)
        if card == "declined":
            assert answer.status_code == 402, answer.text
            intent = answer.json()["error"]["payment_intent"]
            self.payments.append(
                Payment(intent["id"], intent["latest_charge"], amount, "requires_payment_method", "declined", manual)
            )
            return
        assert answer.status_code == 200, answer.text
        intent = answer.json()
        payment = Payment(intent["id"], intent["latest_charge"], amount, "processing", "requires_action", manual)
        if card == "challenged":
            payment.status, payment.challenge = "requires_action", intent["next_action"]["redirect_to_url"]["url"]
        else:
            _settled(payment)
        self.payments.append(payment)

    @rule(amount=st.integers(1, AMOUNT_MAX), manual=st.booleans())
    def pay_and_lose_the_answer(self, amount: int, manual: bool) -> None:
        body = {
            "amount": amount,
            "currency": "EUR",
            "payment_method": self._method(PAYS),
            "capture_method": "manual" if manual else "automatic",
            "confirm": True,
        }
        answer = self.world.loop.run(self.world.blind.post("/v1/payment_intents", json=body))
        assert answer.status_code == 200, answer.text
        intent = answer.json()
        assert intent["status"] == "processing"
        payment = Payment(intent["id"], intent["latest_charge"], amount, "processing", "authorized", manual, answer_lost=True)
        payment.at_acquirer = "authorized" if manual else "captured"
        self.payments.append(payment)

    @precondition(lambda self: any(payment.challenge for payment in self.payments))
    @rule(data=st.data(), authenticated=st.booleans())
    def answer_the_challenge(self, data: st.DataObject, authenticated: bool) -> None:
        """The customer on the acquirer's page; its notification waits to be delivered."""
        payment = data.draw(st.sampled_from(self._with(lambda payment: payment.challenge is not None)))
        assert payment.challenge is not None
        url = urlsplit(payment.challenge)
        token = parse_qs(url.query)["token"][0]

        async def answer() -> httpx.Response:
            async with httpx.AsyncClient(base_url=f"{url.scheme}://{url.netloc}", trust_env=False) as browser:
                return await browser.post(url.path, data={"token": token, "outcome": "complete" if authenticated else "fail"})

        assert self.world.loop.run(answer()).status_code == 303
        payment.challenge, payment.answer_lost = None, True
        payment.at_acquirer = "declined" if not authenticated else "authorized" if payment.manual else "captured"
        self.authenticated[payment.id] = authenticated

    @rule(data=st.data())
    def notify(self, data: st.DataObject) -> None:
        """Any notification the acquirer sent this merchant, in any order, maybe again."""
        # Drawn as a number, not from the list: the list is the acquirer's, not Hypothesis's.
        pick = data.draw(st.integers(0, 10_000))
        charges = {payment.charge for payment in self.payments}
        told = [
            notification
            for notification in self.world.loop.run(notifications_to(self.world.database, self.world.merchant_id))
            if notification["data"].get("reference") in charges
        ]
        if not told:
            return
        notification = told[pick % len(told)]
        answer = self.world.loop.run(deliver(self.world.api, self.world.settings, notification))
        assert answer.status_code == 200, answer.text
        waiting = self._with(lambda payment: payment.answer_lost and payment.charge == notification["data"].get("reference"))
        if waiting and notification["type"] in ("payment.authorized", "payment.captured", "payment.declined"):
            assert answer.json()["result"] == "applied"
            _settled(waiting[0], authenticated=self.authenticated.pop(waiting[0].id, True))
        else:
            assert answer.json()["result"] in ("ignored", "duplicate"), answer.text

    @precondition(lambda self: any(payment.answer_lost and payment.status == "processing" for payment in self.payments))
    @rule()
    def sync(self) -> None:
        """The janitor asks the acquirer about answers it lost (not challenges: their window is 20 minutes)."""
        self.world.loop.run(sync_unknown_attempts(self.world.services.commands, after=timedelta(0)))
        for payment in self._with(lambda payment: payment.answer_lost and payment.status == "processing"):
            _settled(payment)

    @precondition(lambda self: any(payment.status == "requires_capture" for payment in self.payments))
    @rule(data=st.data())
    def capture(self, data: st.DataObject) -> None:
        payment = data.draw(st.sampled_from(self._with(lambda payment: payment.status == "requires_capture")))
        part = data.draw(st.none() | st.integers(1, payment.capturable))
        answer = self._post(f"/v1/payment_intents/{payment.id}/capture", {} if part is None else {"amount_to_capture": part})
        assert answer.status_code == 200, answer.text
        payment.status, payment.received, payment.capturable = "succeeded", part or payment.capturable, 0
        payment.at_acquirer = "captured"

    @precondition(lambda self: any(self._cancelable(payment) for payment in self.payments))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        payment = data.draw(st.sampled_from(self._with(self._cancelable)))
        answer = self._post(f"/v1/payment_intents/{payment.id}/cancel", {"cancellation_reason": "requested_by_customer"})
        assert answer.status_code == 200, answer.text
        if payment.at_acquirer in ("authorized", "requires_action"):
            payment.at_acquirer = "voided"
        payment.status, payment.capturable, payment.challenge = "canceled", 0, None

    @staticmethod
    def _cancelable(payment: Payment) -> bool:
        # Not while its answer is on its way: only that answer settles it (docs/payments.md).
        return payment.status not in ("succeeded", "canceled", "processing") and not payment.answer_lost

    @precondition(lambda self: any(payment.received > payment.refunded for payment in self.payments))
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        payment = data.draw(st.sampled_from(self._with(lambda payment: payment.received > payment.refunded)))
        left = payment.received - payment.refunded
        part = data.draw(st.none() | st.integers(1, left + 1))
        answer = self._post("/v1/refunds", {"payment_intent": payment.id} | ({} if part is None else {"amount": part}))
        if part is not None and part > left:
            assert (answer.status_code, answer.json()["error"]["code"]) == (400, "amount_too_large"), answer.text
            return
        assert answer.status_code == 200, answer.text
        payment.refunded += part or left

    @precondition(lambda self: any(payment.status in ("succeeded", "canceled") for payment in self.payments))
    @rule(data=st.data())
    def illegal_capture(self, data: st.DataObject) -> None:
        payment = data.draw(st.sampled_from(self._with(lambda payment: payment.status in ("succeeded", "canceled"))))
        answer = self._post(f"/v1/payment_intents/{payment.id}/capture", {})
        assert (answer.status_code, answer.json()["error"]["code"]) == (400, "payment_intent_unexpected_state")
        assert payment.status in answer.json()["error"]["message"]

    @precondition(lambda self: self.last is not None)
    @rule()
    def replay(self) -> None:
        assert self.last is not None
        path, body, key, first = self.last
        again = self.world.loop.run(self.world.api.post(path, json=body, headers={"Idempotency-Key": key}))
        assert again.status_code == first.status_code
        if first.status_code == httpx.codes.BAD_REQUEST:
            # A refusal stores nothing on the key (docs/api.md): asked again, it is refused again, afresh.
            assert {**again.json()["error"], "request_id": None} == {**first.json()["error"], "request_id": None}
        else:
            assert again.json() == first.json()

    @invariant()
    def each_intent_reads_as_the_model_says(self) -> None:
        for payment in self.payments:
            intent = self.world.loop.run(self.world.api.get(f"/v1/payment_intents/{payment.id}")).json()
            assert intent["status"] != "processing" or payment.answer_lost, intent
            expected = (payment.status, payment.capturable, payment.received)
            assert (intent["status"], intent["amount_capturable"], intent["amount_received"]) == expected, intent

    @invariant()
    def the_books_agree_with_the_acquirer_and_the_ledger(self) -> None:
        async def look() -> tuple[dict[str, Any], Any]:
            connection = await asyncpg.connect(plain_dsn(self.world.database.owner_url))
            try:
                charges = [payment.charge for payment in self.payments]
                rows = await connection.fetch("SELECT * FROM acquirer.payments WHERE reference = ANY($1::text[])", charges)
                async with connection.transaction(isolation="repeatable_read", readonly=True):
                    checked = await check_payments(connection, await connection.fetchval("SELECT now()"))
            finally:
                await connection.close()
            return {row["reference"]: row for row in rows}, checked

        record, checked = self.world.loop.run(look())
        assert isinstance(checked, PaymentsSummary), checked
        for payment in self.payments:
            acquired = record[payment.charge]
            captured = payment.amount if payment.answer_lost and payment.at_acquirer == "captured" else payment.received
            expected = (payment.at_acquirer, captured, payment.refunded)
            assert (acquired["status"], acquired["amount_captured"], acquired["amount_refunded"]) == expected, payment


def test_payments_agree_with_their_model(
    settings: Settings, test_database: TestDatabase, vault: ApiProcess, acquirer: ApiProcess, merchant: Credentials
) -> None:
    loop = LoopThread("payments-model-loop")

    async def open_world() -> World:
        services = bootstrap.api_services(settings, bootstrap.api_grant(settings, test_database.owner_url, demo=False))
        transport = httpx.ASGITransport(app=create_app(services), client=("127.0.0.1", 50000))
        return World(
            loop=loop,
            api=httpx.AsyncClient(transport=transport, base_url="http://bastion.test", headers=merchant.headers, timeout=30),
            blind=blind_client(services, merchant),
            # Idle connections let go of before the vault's 5 s keep-alive closes them (a request
            # sent as one closes fails), as the API's own clients do.
            vault=httpx.AsyncClient(
                base_url=vault.url,
                headers={"Authorization": f"Bearer {merchant.publishable}"},
                timeout=30,
                limits=httpx.Limits(keepalive_expiry=CLIENT_KEEP_ALIVE_S),
            ),
            database=test_database,
            services=services,
            settings=settings,
            merchant_id=merchant.merchant_id,
        )

    world = loop.run(open_world())
    try:

        class Machine(PaymentsMachine):
            def __init__(self) -> None:
                super().__init__(world)

        run_state_machine_as_test(
            Machine,
            settings=hypothesis.settings(
                max_examples=10,
                stateful_step_count=15,
                deadline=None,
                suppress_health_check=[hypothesis.HealthCheck.too_slow],
            ),
        )
    finally:

        async def close_world() -> None:
            for client in (world.api, world.blind, world.vault, *world.services.outbound):
                await client.aclose()
            await world.services.vault.close()
            await world.services.database.dispose()

        loop.run(close_world())
        loop.close()
