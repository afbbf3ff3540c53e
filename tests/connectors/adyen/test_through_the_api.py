"""Adyen's answers that only a payment through the whole API shows."""

import pytest

from tests.connectors.conftest import ServedAdyen
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess
from tests.support.providers.adyen import API_KEY, HMAC_KEY, MERCHANT_ACCOUNT
from tests.support.vault import payment_method


@pytest.mark.usefixtures("acquirer")
async def test_an_authorisation_adyen_calls_cancelled_fails_the_payment(
    platform: Platform, vault: ApiProcess, adyen: ServedAdyen, merchant: Credentials
) -> None:
    credentials = {"api_key": API_KEY, "merchant_account": MERCHANT_ACCOUNT, "hmac_key": HMAC_KEY}
    async with platform.client(merchant) as client:
        account = await client.post(
            "/v1/connector_accounts", json={"connector": "adyen", "credentials": credentials, "base_url": adyen.server.base_url}
        )
        method = await payment_method(platform, vault, merchant)
        adyen.server.chaos.result_code = "Cancelled"
        body = {"amount": 1000, "currency": "EUR", "payment_method": method, "confirm": True}
        failed = await client.post("/v1/payment_intents", json=body | {"connector_account": account.json()["id"]})
    assert failed.status_code == 402, failed.text
    error = failed.json()["error"]
    assert (error["code"], error["payment_intent"]["status"]) == ("processing_error", "requires_payment_method")
