"""Commands in phases under crashes and duplicates, on `POST /v1/payment_methods` (the vault
exchange between two transactions): `bastion api` killed with SIGKILL after each phase
(`BASTION_FAILPOINT`), then finished by the client's retry with the same key or by the
janitor; 30 concurrent duplicates while the vault call is in flight. Whatever happens: one
payment method, the token consumed once, one audit row, one event."""

import asyncio
import dataclasses
import time
from typing import Any

import asyncpg
import httpx
import pytest

from bastion.api.app import create_app
from bastion.payments.service import CREATE_PAYMENT_METHOD, payment_method_phases
from bastion.platform.certs import CertPaths, client_ssl_context
from bastion.platform.db import Tenant, plain_dsn
from bastion.platform.idempotency import PhasedCommands
from bastion.platform.settings import Settings
from bastion.platform.vault_client import VaultClient
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase, running_api_process
from tests.support.vault import token_id

pytestmark = pytest.mark.slow

HOLD_TIMEOUT_S = 2
# Bounds of every wait: a retry loop through the hold timeout, the janitor's round.
FINISH_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.2
DUPLICATES = 30


async def _post(url: str, credentials: Credentials, token: str, key: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, headers=credentials.headers, timeout=15) as client:
        return await client.post(
            "/v1/payment_methods", json={"type": "card", "card": {"token": token}}, headers={"Idempotency-Key": key}
        )


async def _effects(test_database: TestDatabase, credentials: Credentials, token: str) -> dict[str, Any]:
    """What the command left, counted as the owner: payment methods, the token's card binding
    and use, audit rows and events of the merchant."""
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        merchant = credentials.merchant_id
        return {
            "payment_methods": await connection.fetchval("SELECT count(*) FROM payment_methods WHERE merchant_id = $1", merchant),
            "bound_to": await connection.fetchval(
                "SELECT c.payment_method_id FROM vault.tokens t JOIN vault.cards c ON c.id = t.card_id WHERE t.id = $1", token
            ),
            "token_used": await connection.fetchval("SELECT used_at IS NOT NULL FROM vault.tokens WHERE id = $1", token),
            "audit_rows": await connection.fetchval(
                "SELECT count(*) FROM audit_events WHERE merchant_id = $1 AND action_type = 'payment_method.create'", merchant
            ),
            "events": await connection.fetchval(
                "SELECT count(*) FROM events WHERE merchant_id = $1 AND type = 'payment_method.created'", merchant
            ),
        }
    finally:
        await connection.close()


def _exactly_once(effects: dict[str, Any], payment_method_id: str) -> None:
    assert effects == {
        "payment_methods": 1,
        "bound_to": payment_method_id,
        "token_used": True,
        "audit_rows": 1,
        "events": 1,
    }


async def _killed_at(failpoint: str, test_database: TestDatabase, credentials: Credentials, token: str, key: str) -> None:
    """Send the request to an API that kills itself with SIGKILL at `failpoint`: no answer comes."""
    env = {"BASTION_FAILPOINT": failpoint, "BASTION_IDEMPOTENCY_HOLD_TIMEOUT_S": str(HOLD_TIMEOUT_S)}
    with running_api_process(test_database, env) as api, pytest.raises(httpx.TransportError):
        await _post(api.url, credentials, token, key)


async def _retry_until_answered(api: ApiProcess, credentials: Credentials, token: str, key: str) -> httpx.Response:
    """Retry with the same key while it is held (409), as a client following the docs would."""
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    while True:
        response = await _post(api.url, credentials, token, key)
        if response.status_code != 409 or time.monotonic() > deadline:
            return response
        assert response.json()["error"]["code"] == "idempotency_key_in_use", response.text
        await asyncio.sleep(POLL_INTERVAL_S)


@pytest.mark.parametrize("failpoint", ["phased.started", "phased.called", "phased.finished"])
async def test_a_kill_after_any_phase_is_finished_by_the_retry_exactly_once(
    failpoint: str, platform: Platform, vault: ApiProcess, test_database: TestDatabase
) -> None:
    credentials = await platform.merchant()
    token = await token_id(vault, credentials)
    await _killed_at(failpoint, test_database, credentials, token, "pm-after-kill")

    with running_api_process(test_database, {"BASTION_IDEMPOTENCY_HOLD_TIMEOUT_S": str(HOLD_TIMEOUT_S)}) as api:
        response = await _retry_until_answered(api, credentials, token, "pm-after-kill")
        assert response.status_code == 200, response.text
        # Finished before the kill: the stored answer; otherwise the retry finished the command.
        assert (response.headers.get("Idempotent-Replayed") == "true") == (failpoint == "phased.finished")
        payment_method = response.json()
        assert payment_method["card"]["last4"] == "4242"
        replay = await _post(api.url, credentials, token, "pm-after-kill")
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == payment_method
    _exactly_once(await _effects(test_database, credentials, token), payment_method["id"])


async def test_a_command_whose_client_never_retries_is_finished_by_the_janitor(
    platform: Platform, vault: ApiProcess, test_database: TestDatabase
) -> None:
    credentials = await platform.merchant()
    token = await token_id(vault, credentials)
    await _killed_at("phased.called", test_database, credentials, token, "pm-abandoned")
    assert (await _effects(test_database, credentials, token))["payment_methods"] == 0

    janitor_env = {"BASTION_IDEMPOTENCY_HOLD_TIMEOUT_S": str(HOLD_TIMEOUT_S), "BASTION_IDEMPOTENCY_RESUME_INTERVAL_S": "1"}
    with running_api_process(test_database, janitor_env) as api:
        deadline = time.monotonic() + FINISH_TIMEOUT_S
        while (await _effects(test_database, credentials, token))["payment_methods"] == 0:
            assert time.monotonic() < deadline, "the janitor did not finish the abandoned command"
            await asyncio.sleep(POLL_INTERVAL_S)
        replay = await _post(api.url, credentials, token, "pm-abandoned")
    assert replay.status_code == 200, replay.text
    assert replay.headers["Idempotent-Replayed"] == "true", "the janitor stored the answer on the key"
    _exactly_once(await _effects(test_database, credentials, token), replay.json()["id"])


class _HeldVault(VaultClient):
    """A real vault client whose exchanges wait for `release` before they go out, and count."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.vault_internal_url, client_ssl_context(CertPaths.under(settings.data_dir)), timeout_s=10)
        self.exchanges = 0
        self.release = asyncio.Event()

    async def exchange_token(self, tenant: Tenant, token_id: str, payment_method_id: str) -> dict[str, Any]:
        self.exchanges += 1
        await self.release.wait()
        return await super().exchange_token(tenant, token_id, payment_method_id)


async def test_concurrent_duplicates_during_the_vault_call_make_one_call(
    platform: Platform, vault: ApiProcess, test_database: TestDatabase
) -> None:
    credentials = await platform.merchant()
    token = await token_id(vault, credentials)
    held = _HeldVault(platform.settings)
    commands = PhasedCommands(platform.services.database, {CREATE_PAYMENT_METHOD: payment_method_phases(held)}, hold_timeout_s=90)
    app = create_app(dataclasses.replace(platform.services, commands=commands))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bastion.test", headers=credentials.headers) as client:

        async def duplicate() -> httpx.Response:
            return await client.post(
                "/v1/payment_methods", json={"type": "card", "card": {"token": token}}, headers={"Idempotency-Key": "pm-dup"}
            )

        requests = [asyncio.create_task(duplicate()) for _ in range(DUPLICATES)]
        try:
            # Every duplicate but the one holding the key is answered while its vault call waits.
            deadline = time.monotonic() + FINISH_TIMEOUT_S
            while sum(task.done() for task in requests) < DUPLICATES - 1:
                assert time.monotonic() < deadline, "duplicates were not refused while the key was held"
                await asyncio.sleep(POLL_INTERVAL_S / 10)
            assert held.exchanges == 1
        finally:
            held.release.set()
            answers = await asyncio.gather(*requests)
        replay = await duplicate()
    await held.close()

    statuses = sorted(response.status_code for response in answers)
    assert statuses == [200] + [409] * (DUPLICATES - 1), [response.text for response in answers if response.status_code != 409]
    for response in answers:
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "idempotency_key_in_use"
    created = next(response for response in answers if response.status_code == 200).json()
    assert held.exchanges == 1, "one call to the vault, whatever the duplicates"
    assert replay.status_code == 200
    assert replay.json() == created
    _exactly_once(await _effects(test_database, credentials, token), created["id"])
