import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bastion.connectors import OpenedAccount
from bastion.kernel.ids import new_id
from bastion.payments.connectors import Answer, AttemptResult, Authorization
from bastion.payments.outbound import ProcessorClients
from bastion.payments.stripe import StripeConnector
from bastion.platform.db import Tenant
from tests.connectors.conftest import LocalStripe
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, free_port
from tests.support.providers import require_vendor_specs
from tests.support.providers.stripe import Account
from tests.support.vault import vault_card

# Shorter than any delay the tests ask of the local Stripe, longer than a loaded machine's answer.
TIMEOUT_S = 2.0


@pytest.fixture(scope="session")
async def stripe_outbound() -> AsyncIterator[ProcessorClients]:
    """The outbound clients the session's Stripe connectors share, with a deadline the tests' delays pass."""
    outbound = ProcessorClients(timeout_s=TIMEOUT_S)
    yield outbound
    for client in outbound.clients.values():
        await client.aclose()


@dataclass(frozen=True)
class Opened:
    """A Stripe account of the test's own at the local Stripe, and Bastion's connector for it."""

    account: OpenedAccount
    connector: StripeConnector
    local: LocalStripe

    @property
    def tenant(self) -> Tenant:
        return self.account.tenant

    @property
    def record(self) -> Account:
        """What the local Stripe holds for this account: the judge of "no double charge"."""
        return self.local.server.account(self.account.credentials["secret_key"])


def stripe_account(merchant: Credentials, base_url: str) -> OpenedAccount:
    """A Stripe account of `merchant`'s, with keys of its own, reached at `base_url`."""
    credentials = {"secret_key": f"sk_test_{secrets.token_hex(16)}", "webhook_secret": f"whsec_{secrets.token_hex(16)}"}
    return OpenedAccount(new_id("ca"), "stripe", Tenant(merchant.merchant_id, False), credentials, base_url)


@pytest.fixture
async def stripe(
    platform: Platform, merchant: Credentials, local_stripe: LocalStripe, stripe_outbound: ProcessorClients
) -> AsyncIterator[Opened]:
    account = stripe_account(merchant, local_stripe.url)
    yield Opened(account, StripeConnector(account, platform.services.vault, stripe_outbound), local_stripe)
    local_stripe.server.disarm()


def authorization(card: str, *, amount: int = 2000, currency: str = "EUR", capture: bool = True, **changes: Any) -> Authorization:
    return Authorization(new_id("ch"), card, amount, currency, capture, **changes)


async def authorized(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials, **changes: Any
) -> tuple[Authorization, Answer]:
    """A new card of `merchant`'s authorized at the local Stripe: the request and the answer."""
    request = authorization(await vault_card(platform, vault, merchant), **changes)
    return request, await stripe.connector.authorize(stripe.tenant, request)


async def paid(stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials) -> str:
    """A payment of 2,000 EUR captured at the local Stripe: its PaymentIntent's id."""
    _, answer = await authorized(stripe, platform, vault, merchant)
    assert answer.result == AttemptResult.CAPTURED
    assert answer.reference is not None
    return answer.reference


def closed_port() -> int:
    """A port of 127.0.0.1 where nothing listens."""
    return free_port()


@pytest.fixture(autouse=True)
def _published_descriptions() -> None:
    """The local server speaks and checks the processor's published description."""
    require_vendor_specs("stripe/fixtures3.json")
