from dataclasses import dataclass
from typing import Any

import pytest

from bastion.connectors import OpenedAccount
from bastion.kernel.ids import new_id
from bastion.payments.adyen import AdyenConnector
from bastion.payments.connectors import Answer, Authorization
from bastion.platform.db import Tenant
from tests.connectors.conftest import ServedAdyen
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess
from tests.support.providers import require_vendor_specs
from tests.support.providers.adyen import API_KEY, HMAC_KEY, MERCHANT_ACCOUNT
from tests.support.vault import VISA, vault_card

# Short enough for a test of a lost answer, long enough for a busy machine.
TIMEOUT_S = 2.0
RETURN_URL = "https://shop.example/orders/7"


def account(tenant: Tenant, base_url: str, **credentials: str) -> OpenedAccount:
    return OpenedAccount(
        id="ca_adyen_test",
        connector="adyen",
        tenant=tenant,
        credentials={"api_key": API_KEY, "merchant_account": MERCHANT_ACCOUNT, "hmac_key": HMAC_KEY} | credentials,
        base_url=base_url,
    )


@pytest.fixture
def connector(platform: Platform, merchant: Credentials, adyen: ServedAdyen) -> AdyenConnector:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    return AdyenConnector(account(tenant, adyen.server.base_url), platform.services.vault, timeout_s=TIMEOUT_S)


@dataclass(frozen=True)
class Payer:
    """Authorizations of a fresh merchant's real cards through the connector under test."""

    connector: AdyenConnector
    tenant: Tenant
    platform: Platform
    vault: ApiProcess
    merchant: Credentials

    async def card(self, number: str = VISA) -> str:
        return await vault_card(self.platform, self.vault, self.merchant, number=number)

    async def __call__(self, number: str = VISA, **changes: Any) -> tuple[Authorization, Answer]:
        """An authorization of 10.00 EUR captured at once, as changed, and the connector's answer."""
        fields = {"amount": 1000, "currency": "EUR", "capture": True, "return_url": RETURN_URL} | changes
        request = Authorization(charge_id=new_id("ch"), card=await self.card(number), **fields)
        return request, await self.connector.authorize(self.tenant, request)


@pytest.fixture
def pay(connector: AdyenConnector, platform: Platform, vault: ApiProcess, merchant: Credentials) -> Payer:
    return Payer(connector, Tenant(merchant.merchant_id, livemode=False), platform, vault, merchant)


@pytest.fixture(autouse=True)
def _published_descriptions() -> None:
    """The local server speaks and checks the processor's published description."""
    require_vendor_specs("adyen/CheckoutService-v71.json", "adyen/Webhooks-v1.json")
