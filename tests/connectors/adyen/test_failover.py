"""Routing with failover through a real connector: a merchant's live rules send payments to
Adyen first and the sandbox acquirer second. With Adyen down (nothing sent) every payment
succeeds at the sandbox, once; with Adyen answering too late (it may have acted) nothing is
sent elsewhere. Each provider's own record is the judge."""

import dataclasses
from typing import Any

import asyncpg
import httpx
import pytest

from bastion.api.app import create_app
from bastion.connectors import OpenedAccount
from bastion.kernel.errors import ProcessorUnavailable
from bastion.payments import intents
from bastion.payments.adyen import AdyenConnector
from bastion.payments.connectors import Answer, Authorization
from bastion.payments.directory import ConnectorDirectory
from bastion.platform.db import Tenant, plain_dsn
from bastion.platform.idempotency import PhasedCommands
from bastion.platform.settings import SANDBOX_CONNECTOR
from tests.connectors.conftest import ServedAdyen
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.providers.adyen import API_KEY, HMAC_KEY, MERCHANT_ACCOUNT
from tests.support.vault import payment_method

PAYMENTS = 3


async def _account(client: httpx.AsyncClient, **fields: Any) -> str:
    response = await client.post("/v1/connector_accounts", json=fields)
    assert response.status_code == 200, response.text
    account_id: str = response.json()["id"]
    return account_id


async def _adyen_then_sandbox(client: httpx.AsyncClient, adyen: ServedAdyen) -> tuple[str, str]:
    credentials = {"api_key": API_KEY, "merchant_account": MERCHANT_ACCOUNT, "hmac_key": HMAC_KEY}
    first = await _account(client, connector="adyen", credentials=credentials, base_url=adyen.server.base_url)
    second = await _account(client, connector="sandbox", credentials={})
    rules = await client.post("/v1/routing_rules", json={"rules": [], "default": [first, second], "max_attempts": 2})
    assert rules.status_code == 200, rules.text
    assert (await client.post(f"/v1/routing_rules/{rules.json()['id']}/activate")).status_code == 200
    return first, second


async def _acquirer_payments(test_database: TestDatabase, charge_id: str) -> int:
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM acquirer.payments WHERE reference = $1", charge_id)
    finally:
        await connection.close()
    return count


@pytest.mark.usefixtures("acquirer")
async def test_with_adyen_down_every_payment_succeeds_at_the_sandbox_once(
    platform: Platform,
    vault: ApiProcess,
    adyen: ServedAdyen,
    merchant: Credentials,
    test_database: TestDatabase,
) -> None:
    async with platform.client(merchant) as client:
        first, second = await _adyen_then_sandbox(client, adyen)
        with adyen.stopped():
            for _ in range(PAYMENTS):
                method = await payment_method(platform, vault, merchant)
                body = {"amount": 1000, "currency": "EUR", "payment_method": method, "confirm": True}
                paid = await client.post("/v1/payment_intents", json=body)
                assert paid.status_code == 200, paid.text
                assert paid.json()["status"] == "succeeded"
                charges = (await client.get("/v1/charges", params={"payment_intent": paid.json()["id"]})).json()["data"]
                by_attempt = sorted(charges, key=lambda charge: charge["routing"]["attempt"])
                assert [(c["connector_account"], c["status"]) for c in by_attempt] == [(first, "failed"), (second, "succeeded")]
                assert by_attempt[1]["routing"]["reason"] == "failover"
                assert by_attempt[1]["routing"]["follows"] == by_attempt[0]["id"]
                assert adyen.server.payments_for(by_attempt[0]["id"]) == []
                assert await _acquirer_payments(test_database, by_attempt[1]["id"]) == 1


@pytest.mark.usefixtures("acquirer")
async def test_an_adyen_error_documented_as_not_processed_fails_over_once(
    platform: Platform, vault: ApiProcess, adyen: ServedAdyen, merchant: Credentials, test_database: TestDatabase
) -> None:
    """Adyen's 500 says it could not process the request (its API reference): the sandbox takes it."""
    async with platform.client(merchant) as client:
        first, second = await _adyen_then_sandbox(client, adyen)
        method = await payment_method(platform, vault, merchant)
        adyen.server.chaos.status = 500
        body = {"amount": 1000, "currency": "EUR", "payment_method": method, "confirm": True}
        paid = await client.post("/v1/payment_intents", json=body)
        assert paid.status_code == 200, paid.text
        charges = (await client.get("/v1/charges", params={"payment_intent": paid.json()["id"]})).json()["data"]
    by_attempt = sorted(charges, key=lambda charge: charge["routing"]["attempt"])
    assert [(c["connector_account"], c["status"]) for c in by_attempt] == [(first, "failed"), (second, "succeeded")]
    assert adyen.server.payments_for(by_attempt[0]["id"]) == []
    assert await _acquirer_payments(test_database, by_attempt[1]["id"]) == 1


@pytest.mark.usefixtures("acquirer")
async def test_an_adyen_answer_too_late_is_not_sent_elsewhere(
    platform: Platform,
    vault: ApiProcess,
    adyen: ServedAdyen,
    merchant: Credentials,
    test_database: TestDatabase,
) -> None:
    async with platform.client(merchant) as client:
        first, _second = await _adyen_then_sandbox(client, adyen)
        method = await payment_method(platform, vault, merchant)
        adyen.server.chaos.delay_s = 12.0
        body = {"amount": 1000, "currency": "EUR", "payment_method": method, "confirm": True}
        unknown = await client.post("/v1/payment_intents", json=body)
        assert unknown.status_code == 200, unknown.text
        assert unknown.json()["status"] == "processing"
        charges = (await client.get("/v1/charges", params={"payment_intent": unknown.json()["id"]})).json()["data"]
    assert [(charge["connector_account"], charge["status"]) for charge in charges] == [(first, "pending")]
    assert await _acquirer_payments(test_database, charges[0]["id"]) == 0


class _AnswerLostOnce:
    """Adyen's connector whose first authorization reaches Adyen and whose answer is lost (the
    API dies, say): the confirm's key stays started, for the client's retry to resume."""

    def __init__(self, connector: AdyenConnector) -> None:
        self._connector = connector
        self.name = connector.name
        self.capabilities = connector.capabilities
        self.lost = False

    async def authorize(self, tenant: Tenant, request: Authorization) -> Answer:
        answer = await self._connector.authorize(tenant, request)
        if not self.lost:
            self.lost = True
            raise ProcessorUnavailable("The answer was lost.")
        return answer


@pytest.mark.usefixtures("acquirer")
async def test_a_resumed_confirm_does_not_fail_over_from_what_it_may_have_sent(
    platform: Platform, vault: ApiProcess, adyen: ServedAdyen, merchant: Credentials, test_database: TestDatabase
) -> None:
    """Adyen charged, the answer was lost; at the retry Adyen is down. Failing over now would
    charge the card twice: the attempt waits for its sync instead."""
    services = platform.services
    lossy: list[_AnswerLostOnce] = []

    def adyen_losing_once(account: OpenedAccount) -> Any:
        lossy.append(_AnswerLostOnce(AdyenConnector(account, services.vault)))
        return lossy[-1]

    directory = ConnectorDirectory(
        services.database,
        services.connector_credentials,
        services.connectors.sandbox,
        {SANDBOX_CONNECTOR: lambda _account: services.connectors.sandbox, "adyen": adyen_losing_once},
    )
    commands = services.commands
    registry = dict(commands.registry) | {
        intents.CONFIRM: intents.confirm_phases(services.database, directory, None, services.velocity)
    }
    app = create_app(dataclasses.replace(services, commands=PhasedCommands(services.database, registry, hold_timeout_s=0)))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bastion.test", headers=merchant.headers) as client:
        first, second = await _adyen_then_sandbox(client, adyen)
        method = await payment_method(platform, vault, merchant)
        body = {"amount": 1000, "currency": "EUR", "payment_method": method, "confirm": True}
        lost = await client.post("/v1/payment_intents", json=body, headers={"Idempotency-Key": "lost-once"})
        assert lost.status_code == 502, lost.text
        with adyen.stopped():
            retried = await client.post("/v1/payment_intents", json=body, headers={"Idempotency-Key": "lost-once"})
        assert retried.status_code == 200, retried.text
        intent = retried.json()
        charges = (await client.get("/v1/charges", params={"payment_intent": intent["id"]})).json()["data"]
    assert intent["status"] == "processing"
    assert [(charge["connector_account"], charge["status"]) for charge in charges] == [(first, "pending")]
    assert len(adyen.server.payments_for(charges[0]["id"])) == 1
    assert second not in {charge["connector_account"] for charge in charges}
