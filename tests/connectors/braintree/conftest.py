"""The session's local Braintree gateway, on the port the session's vault forwards Braintree's
card data to, and for each test a Braintree merchant of its own with a connector on it."""

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bastion.kernel.ids import new_id
from bastion.payments.braintree import BRAINTREE, BraintreeConnector
from bastion.payments.connectors import Authorization, ConnectorAccount
from bastion.platform.db import Tenant
from tests.support.asgi import serving
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.providers.braintree import BraintreeGateway, Merchant, Transaction
from tests.support.vault import VISA, payment_method

# Short, so that a test of a slow answer is quick; the sale's deadline is the vault's forward timeout.
CONNECTOR_TIMEOUT_S = 2.0


@dataclass
class LocalBraintree:
    """The gateway served where the session's vault forwards to; `stopped()` closes its port a while."""

    gateway: BraintreeGateway
    port: int
    _serving: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._serving.enter_context(serving(self.gateway, name="braintree", port=self.port))

    def stop(self) -> None:
        self._serving.close()

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()


@dataclass
class Case:
    """A test's Bastion merchant, its Braintree merchant at the local gateway, and a connector on it."""

    platform: Platform
    vault: ApiProcess
    merchant: Credentials
    local: LocalBraintree
    account: Merchant
    connector: BraintreeConnector

    @property
    def gateway(self) -> BraintreeGateway:
        return self.local.gateway

    @property
    def tenant(self) -> Tenant:
        return Tenant(self.merchant.merchant_id, livemode=False)

    async def authorization(
        self, number: str = VISA, *, amount: int = 1_000, currency: str = "USD", capture: bool = True, **more: Any
    ) -> Authorization:
        """A new charge's authorization of a new payment method of `number`."""
        return Authorization(new_id("ch"), await self.card(number), amount, currency, capture=capture, **more)

    async def card(self, number: str = VISA) -> str:
        """The vault's card behind a new payment method of `number`: what an authorization names."""
        method = await payment_method(self.platform, self.vault, self.merchant, number=number)
        async with self.platform.owner.transaction() as connection:
            card: str = await connection.fetchval("SELECT vault_card_id FROM payment_methods WHERE id = $1", method)
        return card

    def sales(self, charge_id: str) -> list[Transaction]:
        return self.gateway.sales(self.account, charge_id)

    def credits(self, refund_id: str) -> list[Transaction]:
        return self.gateway.credits(self.account, refund_id)

    @contextlib.asynccontextmanager
    async def connector_for(self, account: Merchant, base_url: str | None = None) -> AsyncIterator[BraintreeConnector]:
        """A connector of this merchant on another Braintree account (or base URL)."""
        made = BraintreeConnector(account_of(self.merchant, account, base_url or self.local.url), self.platform.services.vault)
        try:
            yield made
        finally:
            await made.close()


def account_of(merchant: Credentials, braintree: Merchant, base_url: str) -> ConnectorAccount:
    return ConnectorAccount(
        id=new_id("ca"),
        connector=BRAINTREE,
        tenant=Tenant(merchant.merchant_id, livemode=False),
        credentials=braintree.credentials,
        base_url=base_url,
    )


@pytest.fixture(scope="session")
def local_braintree(test_database: TestDatabase) -> Iterator[LocalBraintree]:
    served = LocalBraintree(BraintreeGateway(), test_database.braintree_port)
    served.start()
    yield served
    served.stop()


@pytest.fixture
async def case(
    platform: Platform, vault: ApiProcess, merchant: Credentials, local_braintree: LocalBraintree
) -> AsyncIterator[Case]:
    account = local_braintree.gateway.merchant()
    connector = BraintreeConnector(
        account_of(merchant, account, local_braintree.url), platform.services.vault, timeout_s=CONNECTOR_TIMEOUT_S
    )
    yield Case(platform, vault, merchant, local_braintree, account, connector)
    await connector.close()
    local_braintree.gateway.clear_faults()
