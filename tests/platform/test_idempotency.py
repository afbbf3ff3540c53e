"""Idempotency keys with Stripe's semantics, over the real app and database: replays,
misuse, scoping per merchant and mode, concurrent duplicates, failures and expiry."""

import asyncio
from datetime import timedelta
from typing import Any

import httpx

from bastion import bootstrap
from bastion.api.context import IDEMPOTENCY_KEY_LENGTH_MAX
from bastion.kernel.clock import SYSTEM_CLOCK
from bastion.kernel.ids import new_id
from bastion.platform.idempotency.janitor import expire_idempotency_keys
from tests.support.platform import Credentials, Platform

CONCURRENT_REQUESTS = 50


def _key() -> str:
    return f"idem-{new_id('req')}"


async def _stored_keys(platform: Platform, merchant_id: str) -> list[str]:
    async with platform.owner.transaction() as connection:
        rows = await connection.fetch("SELECT key FROM idempotency_keys WHERE merchant_id = $1 ORDER BY key", merchant_id)
        return [str(row["key"]) for row in rows]


async def _listed(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = (await client.get(path, params={"limit": 100})).json()["data"]
    return data


async def test_replay_returns_the_stored_response_and_creates_nothing(platform: Platform, merchant: Credentials) -> None:
    headers = {"Idempotency-Key": _key()}
    body = {"email": "jenny@example.com", "metadata": {"order": "6735"}}
    async with platform.client(merchant) as client:
        first = await client.post("/v1/customers", json=body, headers=headers)
        assert first.status_code == 200, first.text
        assert "Idempotent-Replayed" not in first.headers
        # Same parameters in another key order and spacing are the same request.
        replay = await client.post(
            "/v1/customers",
            content=b'{ "metadata": {"order": "6735"},  "email": "jenny@example.com" }',
            headers={**headers, "Content-Type": "application/json"},
        )
        assert replay.status_code == first.status_code
        assert replay.content == first.content
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.headers["Request-Id"] != first.headers["Request-Id"]
        assert [customer["id"] for customer in await _listed(client, "/v1/customers")] == [first.json()["id"]]
        assert [event["type"] for event in await _listed(client, "/v1/events")] == ["customer.created"]


async def test_reusing_a_key_for_another_request_is_an_idempotency_error(platform: Platform, merchant: Credentials) -> None:
    headers = {"Idempotency-Key": _key()}
    async with platform.client(merchant) as client:
        created = (await client.post("/v1/customers", json={"name": "Jenny"}, headers=headers)).json()
        for method, path, body in (
            ("POST", "/v1/customers", {"name": "Jenny Rosen"}),
            ("POST", "/v1/customers", {}),
            ("POST", f"/v1/customers/{created['id']}", {"name": "Jenny"}),
            ("DELETE", f"/v1/customers/{created['id']}", None),
        ):
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == 400, (method, path, body, response.text)
            error = response.json()["error"]
            assert (error["type"], error["code"], error["param"]) == (
                "idempotency_error",
                "idempotency_key_reused",
                "Idempotency-Key",
            )
        assert (await client.get(f"/v1/customers/{created['id']}")).json() == created


async def test_key_length_is_bounded(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        for key in ("", "k" * (IDEMPOTENCY_KEY_LENGTH_MAX + 1)):
            response = await client.post("/v1/customers", json={}, headers={"Idempotency-Key": key})
            assert response.status_code == 400, (len(key), response.text)
            error = response.json()["error"]
            assert error["param"] == "Idempotency-Key"
            assert "Idempotency-Key" in error["message"]
        assert await _listed(client, "/v1/customers") == []
        longest = await client.post("/v1/customers", json={}, headers={"Idempotency-Key": "k" * IDEMPOTENCY_KEY_LENGTH_MAX})
        assert longest.status_code == 200, longest.text


async def test_keys_are_per_merchant_and_per_mode(platform: Platform, merchant: Credentials) -> None:
    other = await platform.merchant(name="Other merchant")
    live = await platform.api_key(merchant.merchant_id, livemode=True)
    headers = {"Idempotency-Key": _key()}
    ids = []
    for credentials in (merchant, other, live):
        async with platform.client(credentials) as client:
            response = await client.post("/v1/customers", json={"name": "Same"}, headers=headers)
            assert response.status_code == 200, response.text
            assert "Idempotent-Replayed" not in response.headers
            ids.append(response.json()["id"])
    assert len(set(ids)) == 3


async def test_concurrent_duplicates_create_one_object(platform: Platform, merchant: Credentials) -> None:
    headers = {"Idempotency-Key": _key()}
    async with platform.client(merchant) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/customers", json={"name": "Racer"}, headers=headers) for _ in range(CONCURRENT_REQUESTS))
        )
        created = await _listed(client, "/v1/customers")
    assert len(created) == 1
    statuses: dict[int, int] = {}
    for response in responses:
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code == 200:
            assert response.json()["id"] == created[0]["id"]
        else:
            assert response.status_code == 409, response.text
            error = response.json()["error"]
            assert (error["type"], error["code"]) == ("idempotency_error", "idempotency_key_in_use")
    assert set(statuses) <= {200, 409}
    originals = [
        response for response in responses if response.status_code == 200 and "Idempotent-Replayed" not in response.headers
    ]
    assert len(originals) == 1, statuses


async def test_a_failed_request_stores_nothing_and_runs_again(platform: Platform, merchant: Credentials) -> None:
    key = _key()
    missing = f"/v1/customers/{new_id('cus')}"
    async with platform.client(merchant) as client:
        first = await client.post(missing, json={"name": "Ghost"}, headers={"Idempotency-Key": key})
        assert first.status_code == 404, first.text
        assert await _stored_keys(platform, merchant.merchant_id) == []
        retry = await client.post(missing, json={"name": "Ghost"}, headers={"Idempotency-Key": key})
        assert retry.status_code == 404
        assert "Idempotent-Replayed" not in retry.headers
        assert retry.json()["error"]["request_id"] != first.json()["error"]["request_id"]
        # Nothing was stored under the key, so it is still free for a request that succeeds.
        created = await client.post("/v1/customers", json={"name": "Real"}, headers={"Idempotency-Key": key})
        assert created.status_code == 200, created.text
    assert await _stored_keys(platform, merchant.merchant_id) == [key]


async def test_janitor_expires_only_keys_older_than_the_ttl(platform: Platform, merchant: Credentials) -> None:
    ttl_s = platform.settings.idempotency_ttl_s
    old_key, young_key = _key(), _key()
    async with platform.client(merchant) as client:
        for key in (old_key, young_key):
            response = await client.post("/v1/customers", json={}, headers={"Idempotency-Key": key})
            assert response.status_code == 200, response.text
    async with platform.owner.transaction() as connection:
        await connection.execute(
            "UPDATE idempotency_keys SET created_at = $1 WHERE merchant_id = $2 AND key = $3",
            SYSTEM_CLOCK.now() - timedelta(seconds=ttl_s + 60),
            merchant.merchant_id,
            old_key,
        )
    # The worker runs the janitor as its own role, which alone may delete these rows.
    worker = bootstrap.role_database(platform.settings, platform.database.owner_url, platform.database.roles.worker)
    try:
        deleted = await expire_idempotency_keys(worker, ttl_s)
    finally:
        await worker.dispose()
    assert deleted >= 1
    assert await _stored_keys(platform, merchant.merchant_id) == [young_key]
    async with platform.client(merchant) as client:
        again = await client.post("/v1/customers", json={}, headers={"Idempotency-Key": old_key})
    assert again.status_code == 200
    assert "Idempotent-Replayed" not in again.headers, "an expired key starts afresh"
