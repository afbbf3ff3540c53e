"""The Braintree connector against the local gateway, card data through the session's vault."""

from bastion.kernel.ids import new_id
from bastion.payments.braintree import BraintreeConnector
from bastion.payments.connectors import AttemptResult, Authorization
from bastion.platform.db import Tenant
from tests.connectors.braintree.conftest import vault_card
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess
from tests.support.providers.braintree import BraintreeGateway, Merchant


def _tenant(merchant: Credentials) -> Tenant:
    return Tenant(merchant.merchant_id, livemode=False)


async def test_smoke(
    platform: Platform,
    vault: ApiProcess,
    merchant: Credentials,
    connector: BraintreeConnector,
    gateway: BraintreeGateway,
    braintree_merchant: Merchant,
) -> None:
    card = await vault_card(platform, vault, merchant)
    charge = new_id("ch")
    answer = await connector.authorize(_tenant(merchant), Authorization(charge, card, 1050, "USD", capture=False))
    print(answer)
    assert answer.result == AttemptResult.AUTHORIZED
    assert len(gateway.sales(braintree_merchant, charge)) == 1
