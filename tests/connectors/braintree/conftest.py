"""The session's local Braintree gateway, on the port the session's vault forwards Braintree's
card data to, and for each test a Braintree merchant of its own with a connector on it."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bastion.connectors import OpenedAccount
from bastion.kernel.ids import new_id
from bastion.payments.braintree import BRAINTREE, BraintreeConnector
from bastion.payments.connectors import Authorization
from bastion.payments.outbound import ProcessorClients
from bastion.platform.db import Tenant
from tests.connectors.conftest import LocalBraintree
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess
from tests.support.providers.braintree import BraintreeGateway, Merchant, Transaction
from tests.support.vault import VISA, vault_card

# Short, so that a test of a slow answer is quick; the sale's deadline is the vault's forward timeout.
CONNECTOR_TIMEOUT_S = 2.0


@dataclass
class Case:
    """A test's Bastion merchant, its Braintree merchant at the local gateway, and a connector on it."""

    platform: Platform
    vault: ApiProcess
    merchant: Credentials
    local: LocalBraintree
    account: Merchant
    connector: BraintreeConnector
    clients: ProcessorClients

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
        return await vault_card(self.platform, self.vault, self.merchant, number=number)

    def sales(self, charge_id: str) -> list[Transaction]:
        return self.gateway.sales(self.account, charge_id)

    def credits(self, refund_id: str) -> list[Transaction]:
        return self.gateway.credits(self.account, refund_id)

    def connector_for(self, account: Merchant, base_url: str | None = None) -> BraintreeConnector:
        """A connector of this merchant on another Braintree account (or base URL)."""
        opened = account_of(self.merchant, account, base_url or self.local.url)
        return BraintreeConnector(opened, self.platform.services.vault, self.clients)


def account_of(merchant: Credentials, braintree: Merchant, base_url: str) -> OpenedAccount:
    return OpenedAccount(
        id=new_id("ca"),
        connector=BRAINTREE,
        tenant=Tenant(merchant.merchant_id, livemode=False),
        credentials=braintree.credentials,
        base_url=base_url,
    )


@pytest.fixture(scope="session")
async def braintree_clients() -> AsyncIterator[ProcessorClients]:
    """The clients the session's Braintree connectors share, with the tests' short deadline."""
    clients = ProcessorClients(timeout_s=CONNECTOR_TIMEOUT_S)
    yield clients
    for client in clients.clients.values():
        await client.aclose()


@pytest.fixture
async def case(
    platform: Platform,
    vault: ApiProcess,
    merchant: Credentials,
    local_braintree: LocalBraintree,
    braintree_clients: ProcessorClients,
) -> AsyncIterator[Case]:
    account = local_braintree.gateway.merchant()
    connector = BraintreeConnector(account_of(merchant, account, local_braintree.url), platform.services.vault, braintree_clients)
    yield Case(platform, vault, merchant, local_braintree, account, connector, braintree_clients)
    local_braintree.gateway.clear_faults()
