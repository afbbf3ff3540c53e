"""The per-key rate limit, on an app built with a low limit over the real database."""

import asyncio

import httpx
from fastapi import FastAPI

from bastion.api.app import create_app
from tests.support.platform import Credentials, Platform

RATE_PER_S = 1
BURST = 3
# Requests beyond the burst before the limit must have answered: a slow machine may
# refill a token or two while the burst is spent.
EXTRA_REQUESTS_MAX = 5


def _client(app: FastAPI, credentials: Credentials) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),
        base_url="http://bastion.test",
        headers=credentials.headers,
    )


async def test_burst_then_429_per_key_then_recovery(platform: Platform, merchant: Credentials) -> None:
    app = create_app(platform.with_rate_limit(per_s=RATE_PER_S, burst=BURST))
    other_key = await platform.api_key(merchant.merchant_id)
    async with _client(app, merchant) as client, _client(app, other_key) as other:
        for _ in range(BURST):
            assert (await client.get("/v1/customers")).status_code == 200
        for _ in range(EXTRA_REQUESTS_MAX):
            limited = await client.get("/v1/customers")
            if limited.status_code != 200:
                break
        assert limited.status_code == 429, limited.text
        error = limited.json()["error"]
        assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit")
        retry_after_s = int(limited.headers["Retry-After"])
        assert 1 <= retry_after_s <= BURST

        # Writes are limited too.
        write = await client.post("/v1/customers", json={"name": "limited"})
        assert write.status_code == 429, write.text

        # The limit is per key: another key of the same merchant is unaffected.
        assert (await other.get("/v1/customers")).status_code == 200

        await asyncio.sleep(retry_after_s)
        recovered = await client.get("/v1/customers")
        assert recovered.status_code == 200, recovered.text
