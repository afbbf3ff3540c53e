"""Seeded chaos at the sandbox acquirer: latency, a 5xx before acting, and "accept, then time out
before answering" (the work done and committed, the answer held back past the caller's
deadline). Payments of three kinds (captured at once; authorized then captured in part; captured
then refunded in part) are driven by clients that retry with the same Idempotency-Key, as the
docs ask. Whatever the acquirer does: every payment converges, there is no double charge (the
acquirer's own record is the judge), Bastion's books equal the acquirer's, and `bastion payments
check` passes.

`make test` runs BASTION_CHAOS_RUNS=200 payments (the default); `make chaos` runs 10,000. The
seed is BASTION_CHAOS_SEED (default 13): the same seed replays the same fates."""

import asyncio
import os
import random
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import asyncpg
import httpx
import pytest

from bastion.payments.check import PaymentsSummary, check_payments
from bastion.platform.db import plain_dsn
from bastion.platform.vault_client import CLIENT_KEEP_ALIVE_S
from tests.support.platform import Credentials, Platform
from tests.support.postgres import (
    ApiProcess,
    TestDatabase,
    free_port,
    running_acquirer,
    running_api_process,
    running_vault,
)
from tests.support.vault import card

pytestmark = pytest.mark.slow

RUNS = int(os.environ.get("BASTION_CHAOS_RUNS", "200"))
SEED = int(os.environ.get("BASTION_CHAOS_SEED", "13"))
CONCURRENT = 16
# Each request is retried until answered, at most this often: with 200 + 200 per mille of chaos,
# a request that fails this many times in a row has a chance of 0.4^40.
ATTEMPTS_MAX = 40
RETRY_PAUSE_S = 0.05
CALL_TIMEOUT_MS = 400
CHAOS = {
    "BASTION_ACQUIRER_CHAOS_SEED": str(SEED),
    "BASTION_ACQUIRER_CHAOS_LATENCY_MS": "20",
    "BASTION_ACQUIRER_CHAOS_ERROR_PER_MILLE": "200",
    "BASTION_ACQUIRER_CHAOS_TIMEOUT_PER_MILLE": "200",
    # Longer than the vault's and the API's deadline for the acquirer: the caller gives up first.
    "BASTION_ACQUIRER_CHAOS_HANG_MS": str(3 * CALL_TIMEOUT_MS),
}
RETRIED = frozenset({409, 502, 503, 504})
# The API and the vault close a connection idle for 5 s (uvicorn's keep-alive); a client that kept
# it as long would race that close and meet "Server disconnected" on a request already sent.
CLIENT_LIMITS = httpx.Limits(keepalive_expiry=CLIENT_KEEP_ALIVE_S)
# What the clients met, so that the test cannot pass without chaos.
MET: dict[int | str, int] = {}


@pytest.fixture(scope="module")
def chaotic(test_database: TestDatabase, vault: ApiProcess, acquirer: ApiProcess) -> Iterator[tuple[ApiProcess, ApiProcess]]:
    """A chaotic acquirer, and a vault and an API of their own that call it with short deadlines;
    yields the API and the vault."""
    acquirer_port, public, internal, api_port = free_port(), free_port(), free_port(), free_port()
    urls = {
        "BASTION_ACQUIRER_URL": f"https://127.0.0.1:{acquirer_port}",
        # Its notifications go to the API beside it, and race the answers they repeat.
        "BASTION_ACQUIRER_NOTIFY_URL": f"http://127.0.0.1:{api_port}",
        "BASTION_VAULT_PUBLIC_URL": f"http://127.0.0.1:{public}",
        "BASTION_VAULT_INTERNAL_URL": f"https://127.0.0.1:{internal}",
        "BASTION_VAULT_FORWARD_TIMEOUT_MS": str(CALL_TIMEOUT_MS),
        "BASTION_ACQUIRER_TIMEOUT_MS": str(CALL_TIMEOUT_MS),
        # Above any call's deadline (the vault's, plus the API's margin): a live holder is never taken over.
        "BASTION_IDEMPOTENCY_HOLD_TIMEOUT_S": "10",
    }
    with ExitStack() as stack:
        stack.enter_context(running_acquirer(test_database, CHAOS | urls, ports=(acquirer_port, free_port())))
        chaotic_vault = stack.enter_context(running_vault(test_database, urls, ports=(public, internal)))
        api = stack.enter_context(running_api_process(test_database, urls, port=api_port))
        yield api, chaotic_vault


async def _until_answered(client: httpx.AsyncClient, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    """The request, retried with the same key while the answer is a 5xx or the key is busy (409)."""
    for _ in range(ATTEMPTS_MAX):
        try:
            answer = await client.post(path, json=body, headers={"Idempotency-Key": key})
        except httpx.TimeoutException:
            MET["timeout"] = MET.get("timeout", 0) + 1
            continue
        MET[answer.status_code] = MET.get(answer.status_code, 0) + 1
        if answer.status_code not in RETRIED:
            assert answer.status_code == 200, (path, answer.text)
            found: dict[str, Any] = answer.json()
            return found
        await asyncio.sleep(RETRY_PAUSE_S)
    raise AssertionError(f"{path} ({key}) was not answered in {ATTEMPTS_MAX} attempts")


async def _payment_method(api: httpx.AsyncClient, vault: httpx.AsyncClient, index: int) -> str:
    token = await vault.post("/v1/tokens", json={"card": card(number="4242424242424242")})
    assert token.status_code == 200, token.text
    method = await api.post("/v1/payment_methods", json={"type": "card", "card": {"token": token.json()["id"]}})
    assert method.status_code == 200, (index, method.text)
    created: str = method.json()["id"]
    return created


async def _run(api: httpx.AsyncClient, method: str, index: int) -> dict[str, Any]:
    """One payment of the kind the seed draws for `index`; what Bastion answered."""
    kind = random.Random(f"{SEED}:{index}").choice(["captured at once", "captured in part", "refunded in part"])  # noqa: S311
    manual = kind == "captured in part"
    body = {
        "amount": 1000 + index,
        "currency": "EUR",
        "payment_method": method,
        "confirm": True,
        "capture_method": "manual" if manual else "automatic",
    }
    intent = await _until_answered(api, "/v1/payment_intents", body, f"chaos-{SEED}-{index}-pay")
    if manual:
        assert intent["status"] == "requires_capture", intent
        path = f"/v1/payment_intents/{intent['id']}/capture"
        intent = await _until_answered(api, path, {"amount_to_capture": 600}, f"chaos-{SEED}-{index}-capture")
    assert intent["status"] == "succeeded", intent
    refunded = 0
    if kind == "refunded in part":
        refund = await _until_answered(
            api, "/v1/refunds", {"payment_intent": intent["id"], "amount": 250}, f"chaos-{SEED}-{index}-refund"
        )
        assert refund["status"] == "succeeded", refund
        refunded = 250
    return {
        "intent": intent["id"],
        "charge": intent["latest_charge"],
        "captured": intent["amount_received"],
        "refunded": refunded,
    }


async def _acquirers_record(test_database: TestDatabase, merchant_id: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        return list(
            await connection.fetch(
                "SELECT reference, status, amount_captured, amount_refunded FROM acquirer.payments WHERE merchant = $1",
                merchant_id,
            )
        )
    finally:
        await connection.close()


async def test_seeded_chaos_converges_without_a_double_charge(
    chaotic: tuple[ApiProcess, ApiProcess], platform: Platform, test_database: TestDatabase
) -> None:
    api_process, vault_process = chaotic
    merchant: Credentials = await platform.merchant()
    async with (
        httpx.AsyncClient(base_url=api_process.url, headers=merchant.headers, timeout=30, limits=CLIENT_LIMITS) as api,
        httpx.AsyncClient(
            base_url=vault_process.url, headers={"Authorization": f"Bearer {merchant.publishable}"}, limits=CLIENT_LIMITS
        ) as vault,
    ):
        queue = iter(range(RUNS))
        outcomes: list[dict[str, Any]] = []

        async def worker() -> None:
            # The workers share one queue of runs; each makes its card's payment method first.
            outcomes.extend([await _run(api, await _payment_method(api, vault, index), index) for index in queue])

        await asyncio.gather(*(worker() for _ in range(CONCURRENT)))

    assert len(outcomes) == RUNS
    # The acquirer failed before acting, and held answers back past the API's deadline.
    assert MET.get(502, 0) > 0, MET
    record = {row["reference"]: row for row in await _acquirers_record(test_database, merchant.merchant_id)}
    # One payment at the acquirer per payment asked for: no double charge, none lost.
    assert len(record) == RUNS
    assert sorted(record) == sorted(outcome["charge"] for outcome in outcomes)
    for outcome in outcomes:
        acquired = record[outcome["charge"]]
        assert (acquired["status"], acquired["amount_captured"], acquired["amount_refunded"]) == (
            "captured",
            outcome["captured"],
            outcome["refunded"],
        ), outcome
    async with platform.owner.transaction() as connection:
        charges = await connection.fetchval("SELECT count(*) FROM charges WHERE merchant_id = $1", merchant.merchant_id)
        checked = await check_payments(connection, platform.clock.now())
    assert charges == RUNS, "one attempt per payment: the retries made no second charge"
    assert isinstance(checked, PaymentsSummary), checked
