"""An in-process Bastion on the test database: the real app, the real roles, over ASGI."""

import dataclasses
from dataclasses import dataclass
from typing import Any

import httpx

from bastion import bootstrap
from bastion.api.app import create_app
from bastion.api.context import Services
from bastion.kernel.ids import new_id
from bastion.merchants import add_allowed_origin, create_api_key, create_merchant
from bastion.platform.crypto import KeyedHasher, LocalKeyring
from bastion.platform.db import Actor, Tenant
from bastion.platform.http.ratelimit import RateLimiter
from bastion.platform.settings import Settings
from tests.support.clock import ShiftedClock
from tests.support.postgres import TestDatabase


@dataclass(frozen=True)
class Credentials:
    merchant_id: str
    key_id: str
    secret: str
    publishable: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


async def merchant_with_key(
    database: TestDatabase, name: str, *, scopes: list[str] | None = None, actor: str = "test"
) -> Credentials:
    """A new merchant and a test-mode key (`scopes`, default all), written with the owner role as
    `bastion merchant create` and `bastion apikey create` write them, for processes that serve
    `database` (without a Platform, or the commands' seconds of start-up)."""
    tenant = Tenant(new_id("mer"), livemode=False)
    hasher = KeyedHasher(LocalKeyring.open(database.data_dir, create=False).secret(bootstrap.API_KEY_HASH_PURPOSE))
    owner = bootstrap.owner_database(database.owner_url)
    try:
        async with owner.unit_of_work(tenant, Actor(id=actor)) as uow:
            await create_merchant(uow, name)
            issued = await create_api_key(uow, hasher, scopes)
    finally:
        await owner.dispose()
    return Credentials(merchant_id=tenant.merchant_id, key_id=issued.id, secret=issued.secret, publishable=issued.publishable)


class Platform:
    def __init__(self, database: TestDatabase, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        # The API's time: a test may move it ahead with `clock.shifted(...)`.
        self.clock = ShiftedClock()
        self.owner = bootstrap.owner_database(database.owner_url, clock=self.clock)
        grant = bootstrap.api_grant(settings, database.owner_url, demo=False)
        self.services = bootstrap.api_services(settings, grant, clock=self.clock)
        self.app = create_app(self.services)

    def client(self, credentials: Credentials | None = None, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("127.0.0.1", 50000)),
            base_url="http://bastion.test",
            headers=credentials.headers if credentials else None,
            **kwargs,
        )

    def with_rate_limit(self, per_s: int, burst: int) -> Services:
        return dataclasses.replace(self.services, rate_limiter=RateLimiter(per_s, burst))

    async def create_customer(self, credentials: Credentials, **body: Any) -> dict[str, Any]:
        """POST /v1/customers and insist on success."""
        async with self.client(credentials) as client:
            response = await client.post("/v1/customers", json=body)
        assert response.status_code == 200, response.text
        created: dict[str, Any] = response.json()
        return created

    async def merchant(
        self, *, livemode: bool = False, scopes: list[str] | None = None, name: str = "Test merchant"
    ) -> Credentials:
        actor = Actor(id="test")
        merchant_id = new_id("mer")
        async with self.owner.unit_of_work(Tenant(merchant_id, livemode), actor) as uow:
            await create_merchant(uow, name)
        return await self.api_key(merchant_id, livemode=livemode, scopes=scopes)

    async def api_key(self, merchant_id: str, *, livemode: bool = False, scopes: list[str] | None = None) -> Credentials:
        async with self.owner.unit_of_work(Tenant(merchant_id, livemode), Actor(id="test")) as uow:
            issued = await create_api_key(uow, self.services.authenticator.hasher, scopes)
        return Credentials(merchant_id=merchant_id, key_id=issued.id, secret=issued.secret, publishable=issued.publishable)

    async def allow_origin(self, credentials: Credentials, origin: str, *, livemode: bool = False) -> None:
        """Register a page origin that may frame the merchant's card fields in one mode."""
        async with self.owner.unit_of_work(Tenant(credentials.merchant_id, livemode), Actor(id="test")) as uow:
            await add_allowed_origin(uow, origin)

    async def close(self) -> None:
        await self.services.vault.close()
        for client in self.services.outbound:
            await client.aclose()
        await self.services.velocity.close()
        await self.services.database.dispose()
        await self.owner.dispose()
