"""The session's local Braintree gateway, on the port the session's vault forwards Braintree's
card data to, and a connector on a merchant of its own for each test."""

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from bastion.kernel.ids import new_id
from bastion.payments.braintree import BRAINTREE, BraintreeConnector
from bastion.payments.connectors import ConnectorAccount
from bastion.platform.db import Tenant
from tests.support.asgi import serving
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.providers.braintree import BraintreeGateway, Merchant
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


@pytest.fixture(scope="session")
def local_braintree(test_database: TestDatabase) -> Iterator[LocalBraintree]:
    served = LocalBraintree(BraintreeGateway(), test_database.braintree_port)
    served.start()
    yield served
    served.stop()


@pytest.fixture
def gateway(local_braintree: LocalBraintree) -> Iterator[BraintreeGateway]:
    yield local_braintree.gateway
    local_braintree.gateway.clear_faults()


@pytest.fixture
def braintree_merchant(gateway: BraintreeGateway) -> Merchant:
    return gateway.merchant()


def account_for(merchant: Credentials, braintree: Merchant, base_url: str) -> ConnectorAccount:
    return ConnectorAccount(
        id=new_id("ca"),
        connector=BRAINTREE,
        tenant=Tenant(merchant.merchant_id, livemode=False),
        credentials=braintree.credentials,
        base_url=base_url,
    )


@pytest.fixture
async def connector(
    platform: Platform, merchant: Credentials, braintree_merchant: Merchant, local_braintree: LocalBraintree
) -> AsyncIterator[BraintreeConnector]:
    made = BraintreeConnector(
        account_for(merchant, braintree_merchant, local_braintree.url), platform.services.vault, timeout_s=CONNECTOR_TIMEOUT_S
    )
    yield made
    await made.close()


async def vault_card(platform: Platform, vault: ApiProcess, merchant: Credentials, number: str = VISA) -> str:
    """The vault's card behind a new payment method of `number`: what an authorization names."""
    method = await payment_method(platform, vault, merchant, number=number)
    async with platform.owner.transaction() as connection:
        card: str = await connection.fetchval("SELECT vault_card_id FROM payment_methods WHERE id = $1", method)
    return card
