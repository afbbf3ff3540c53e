"""Payments against a model, step by step, through the real API, vault and sandbox acquirer.

Hypothesis drives random sequences of payments (captured at once or authorized, with a card
that pays or one that is declined), captures in full or in part, cancels, refunds in full or
in part, illegal requests and replays with the same Idempotency-Key. A model predicts each
answer. After every step: each intent reads as the model says, no intent is left
`processing`, the acquirer's own record of each payment (status, captured, refunded) is
Bastion's, and `bastion payments check` proves the books (captured <= authorized, refunded
<= captured, each authorization released once, every currency summing to zero).
"""

from dataclasses import dataclass
from typing import Any

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
from bastion.platform.db import plain_dsn
from bastion.platform.settings import Settings
from tests.support.loop import LoopThread
from tests.support.platform import Credentials
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import card

PAYS = "4242424242424242"
DECLINED = "4000000000000002"
AMOUNT_MAX = 5_000


@dataclass
class Payment:
    """What the model expects of one intent."""

    id: str
    charge: str
    amount: int
    status: str
    capturable: int = 0
    received: int = 0
    refunded: int = 0
    authorized: bool = False


@dataclass
class World:
    loop: LoopThread
    api: httpx.AsyncClient
    vault: httpx.AsyncClient
    owner_url: str
    services: Services


class PaymentsMachine(RuleBasedStateMachine):
    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.payments: list[Payment] = []
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

    @rule(amount=st.integers(1, AMOUNT_MAX), manual=st.booleans(), declined=st.booleans())
    def pay(self, amount: int, manual: bool, declined: bool) -> None:
        body = {
            "amount": amount,
            "currency": "EUR",
            "payment_method": self._method(DECLINED if declined else PAYS),
            "capture_method": "manual" if manual else "automatic",
            "confirm": True,
        }
        answer = self._post("/v1/payment_intents", body)
        if declined:
            assert answer.status_code == 402, answer.text
            intent = answer.json()["error"]["payment_intent"]
            self.payments.append(Payment(intent["id"], intent["latest_charge"], amount, "requires_payment_method"))
            return
        assert answer.status_code == 200, answer.text
        intent = answer.json()
        if manual:
            payment = Payment(
                intent["id"], intent["latest_charge"], amount, "requires_capture", capturable=amount, authorized=True
            )
        else:
            payment = Payment(intent["id"], intent["latest_charge"], amount, "succeeded", received=amount, authorized=True)
        self.payments.append(payment)

    @precondition(lambda self: any(payment.status == "requires_capture" for payment in self.payments))
    @rule(data=st.data())
    def capture(self, data: st.DataObject) -> None:
        payment = data.draw(st.sampled_from(self._with(lambda payment: payment.status == "requires_capture")))
        part = data.draw(st.none() | st.integers(1, payment.capturable))
        answer = self._post(f"/v1/payment_intents/{payment.id}/capture", {} if part is None else {"amount_to_capture": part})
        assert answer.status_code == 200, answer.text
        payment.status, payment.received, payment.capturable = "succeeded", part or payment.capturable, 0

    @precondition(lambda self: any(payment.status not in ("succeeded", "canceled") for payment in self.payments))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        payment = data.draw(st.sampled_from(self._with(lambda payment: payment.status not in ("succeeded", "canceled"))))
        answer = self._post(f"/v1/payment_intents/{payment.id}/cancel", {"cancellation_reason": "requested_by_customer"})
        assert answer.status_code == 200, answer.text
        payment.status, payment.capturable = "canceled", 0

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
            assert intent["status"] != "processing", intent
            expected = (payment.status, payment.capturable, payment.received)
            assert (intent["status"], intent["amount_capturable"], intent["amount_received"]) == expected, intent

    @invariant()
    def the_books_agree_with_the_acquirer_and_the_ledger(self) -> None:
        async def look() -> tuple[dict[str, Any], Any]:
            connection = await asyncpg.connect(plain_dsn(self.world.owner_url))
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
            if not payment.authorized:
                assert acquired["status"] == "declined"
                continue
            status = "voided" if payment.status == "canceled" else "captured" if payment.received else "authorized"
            expected = (status, payment.received, payment.refunded)
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
            vault=httpx.AsyncClient(base_url=vault.url, headers={"Authorization": f"Bearer {merchant.publishable}"}, timeout=30),
            owner_url=test_database.owner_url,
            services=services,
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
            for client in (world.api, world.vault, *world.services.outbound):
                await client.aclose()
            await world.services.vault.close()
            await world.services.database.dispose()

        loop.run(close_world())
        loop.close()
