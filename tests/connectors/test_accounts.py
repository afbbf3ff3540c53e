"""Connector accounts and the feature matrix through the API: credentials checked per kind and
mode, answered masked, sealed by envelope encryption and found nowhere in clear (answers,
replays, audit rows, events, stored idempotent answers, logs); base URLs per mode; update,
disable, the limit per mode, the list; GET /v1/connectors; scopes."""

from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidTag

from bastion.connectors import CredentialsSealer, SealedCredentials
from bastion.connectors.domain import ACCOUNTS_PER_MODE_MAX
from bastion.connectors.resources import Connector, ConnectorAccount
from bastion.connectors.routes import connectors_router, router
from tests.connectors.test_domain import good
from tests.support.platform import Credentials, Platform
from tests.support.resources import check_resource, documented_properties


async def _create(client: httpx.AsyncClient, key: str | None = None, **fields: Any) -> httpx.Response:
    return await client.post("/v1/connector_accounts", json=fields, headers={"Idempotency-Key": key} if key else None)


async def _row(platform: Platform, account_id: str) -> dict[str, Any]:
    async with platform.owner.transaction() as connection:
        row = await connection.fetchrow("SELECT * FROM connector_accounts WHERE id = $1", account_id)
    assert row is not None
    return dict(row)


def _sealer(platform: Platform) -> CredentialsSealer:
    sealer: CredentialsSealer = platform.services.connector_credentials
    return sealer


def _sealed(row: dict[str, Any]) -> SealedCredentials:
    return SealedCredentials(row["credentials_sealed"], row["data_key_sealed"], row["algorithm"], row["key_purpose"])


async def test_credentials_are_answered_masked_and_found_nowhere_in_clear(
    platform: Platform, merchant: Credentials, capfd: pytest.CaptureFixture[str]
) -> None:
    credentials = good("stripe", livemode=False)
    body = {"connector": "stripe", "credentials": credentials, "label": "EU shop", "metadata": {"team": "pay"}}
    async with platform.client(merchant) as client:
        created = await _create(client, "ca-create-1", **body)
        assert created.status_code == 200, created.text
        replayed = await _create(client, "ca-create-1", **body)
        account = created.json()
        read = await client.get(f"/v1/connector_accounts/{account['id']}")
        # A refusal of a well-formed but wrong credential does not echo it either.
        wrong = await _create(
            client, connector="stripe", credentials=credentials | {"webhook_secret": "x" + credentials["secret_key"]}
        )
    check_resource(ConnectorAccount, account, documented_properties(router)["ConnectorAccount"])
    assert account["credentials"] == {
        "secret_key": f"sk_test_…{credentials['secret_key'][-4:]}",
        "webhook_secret": f"whsec_…{credentials['webhook_secret'][-4:]}",
    }
    assert (account["connector"], account["label"], account["status"], account["livemode"]) == (
        "stripe",
        "EU shop",
        "enabled",
        False,
    )
    assert (account["base_url"], account["metadata"], account["disabled_at"]) == ("https://api.stripe.com", {"team": "pay"}, None)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == account
    assert read.json() == account
    assert (wrong.status_code, wrong.json()["error"]["param"]) == (400, "credentials[webhook_secret]")
    row = await _row(platform, account["id"])
    assert (row["algorithm"], row["key_purpose"]) == ("aes-256-gcm", "connector-credentials")
    assert _sealer(platform).open(account["id"], _sealed(row)) == credentials
    async with platform.owner.transaction() as connection:
        stored = await connection.fetch(
            "SELECT response_body AS text FROM idempotency_keys WHERE merchant_id = $1 "
            "UNION ALL SELECT before_state::text || after_state::text FROM audit_events WHERE merchant_id = $1 "
            "UNION ALL SELECT data::text FROM events WHERE merchant_id = $1 "
            "UNION ALL SELECT row_to_json(c)::text FROM connector_accounts AS c WHERE merchant_id = $1",
            merchant.merchant_id,
        )
    logged = capfd.readouterr()
    places = [str(value["text"]) for value in stored] + [created.text, read.text, wrong.text, logged.out, logged.err]
    assert len(stored) >= 4
    for value in credentials.values():
        assert all(value not in place for place in places), "a credential in clear"
        assert all(value.encode().hex() not in place for place in places), "a credential in hex"


async def test_a_sealed_envelope_opens_only_on_its_own_account(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        first, second = [
            (await _create(client, connector="braintree", credentials=good("braintree", livemode=False))).json() for _ in range(2)
        ]
    copied = _sealed(await _row(platform, first["id"]))
    with pytest.raises(InvalidTag):
        _sealer(platform).open(second["id"], copied)


async def test_each_kind_checks_its_credentials_naming_the_field(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        answers = {
            "unknown connector": await _create(client, connector="paypal"),
            "missing": await _create(client, connector="stripe", credentials={"secret_key": good("stripe", False)["secret_key"]}),
            "live key in test": await _create(client, connector="stripe", credentials=good("stripe", True)),
            "not hex": await _create(client, connector="adyen", credentials=good("adyen", False) | {"hmac_key": "g" * 64}),
            "foreign field": await _create(
                client, connector="braintree", credentials=good("braintree", False) | {"hmac_key": "ab" * 16}
            ),
            "unknown field": await _create(client, connector="sandbox", credentials={"password": "hunter2hunter2"}),
            "space": await _create(client, connector="braintree", credentials=good("braintree", False) | {"merchant_id": "a b"}),
            "too long": await _create(client, connector="adyen", credentials=good("adyen", False) | {"api_key": "A" * 1025}),
        }
        sandbox = await _create(client, connector="sandbox")
        adyen = await _create(client, connector="adyen", credentials=good("adyen", False))
    expected = {
        "unknown connector": ("parameter_invalid", "connector"),
        "missing": ("connector_credentials_invalid", "credentials[webhook_secret]"),
        "live key in test": ("connector_credentials_invalid", "credentials[secret_key]"),
        "not hex": ("connector_credentials_invalid", "credentials[hmac_key]"),
        "foreign field": ("connector_credentials_invalid", "credentials[hmac_key]"),
        "unknown field": ("parameter_unknown", "credentials[password]"),
        "space": ("parameter_invalid", "credentials[merchant_id]"),
        "too long": ("parameter_invalid", "credentials[api_key]"),
    }
    for name, answer in answers.items():
        assert answer.status_code == 400, (name, answer.text)
        assert (answer.json()["error"]["code"], answer.json()["error"]["param"]) == expected[name], name
    assert "hunter2" not in answers["unknown field"].text
    assert (sandbox.json()["credentials"], sandbox.json()["base_url"]) == ({}, platform.settings.acquirer_url)
    assert adyen.json()["base_url"] == "https://checkout-test.adyen.com"
    assert set(adyen.json()["credentials"]) == {"api_key", "merchant_account", "hmac_key"}


async def test_live_mode_takes_live_credentials_and_public_https_only(platform: Platform, merchant: Credentials) -> None:
    live = await platform.api_key(merchant.merchant_id, livemode=True)
    adyen = good("adyen", livemode=True)
    async with platform.client(live) as live_client, platform.client(merchant) as test_client:
        sandbox = await _create(live_client, connector="sandbox")
        stripe = await _create(live_client, connector="stripe", credentials=good("stripe", True))
        made = await _create(live_client, connector="adyen", credentials=adyen)
        no_prefix = await _create(live_client, connector="adyen", credentials=adyen | {"live_url_prefix": None})
        http = await _create(live_client, connector="stripe", credentials=good("stripe", True), base_url="http://localhost:12111")
        private = await _create(live_client, connector="stripe", credentials=good("stripe", True), base_url="https://10.0.0.8")
        with_path = await _create(
            live_client, connector="stripe", credentials=good("stripe", True), base_url="https://stripe.example.com/v1"
        )
        own = await _create(
            live_client, connector="braintree", credentials=good("braintree", True), base_url="https://BT.example.com:8443/"
        )
        local = await _create(
            test_client, connector="stripe", credentials=good("stripe", False), base_url="http://127.0.0.1:12111"
        )
        test_list = (await test_client.get("/v1/connector_accounts")).json()["data"]
    assert (sandbox.status_code, sandbox.json()["error"]["param"]) == (400, "connector")
    assert stripe.json()["credentials"]["secret_key"].startswith("sk_live_…")
    assert made.json()["base_url"] == f"https://{adyen['live_url_prefix']}-checkout-live.adyenpayments.com"
    assert made.json()["credentials"]["live_url_prefix"] == adyen["live_url_prefix"]
    assert (no_prefix.status_code, no_prefix.json()["error"]["param"]) == (400, "credentials[live_url_prefix]")
    for refused in (http, private, with_path):
        assert refused.status_code == 400, refused.text
        assert (refused.json()["error"]["code"], refused.json()["error"]["param"]) == ("url_not_allowed", "base_url")
    assert own.json()["base_url"] == "https://bt.example.com:8443"
    assert local.json()["base_url"] == "http://127.0.0.1:12111"
    assert [account["id"] for account in test_list] == [local.json()["id"]], "live accounts are invisible to test keys"


async def test_update_disable_list_and_the_limit(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        made = [(await _create(client, connector="sandbox", label=f"n{n}")).json()["id"] for n in range(ACCOUNTS_PER_MODE_MAX)]
        full = await _create(client, connector="sandbox")
        path = f"/v1/connector_accounts/{made[0]}"
        updated = await client.post(path, json={"label": None, "metadata": {"a": "1"}})
        unknown = await client.post(path, json={"credentials": {"secret_key": "sk_test_x"}})
        disabled = await client.post(f"{path}/disable", headers={"Idempotency-Key": "dis-1"})
        again = await client.post(f"{path}/disable")
        read = await client.get(path)
        after = await _create(client, connector="sandbox")
        first_page = await client.get("/v1/connector_accounts", params={"limit": 20})
        second_page = await client.get(
            "/v1/connector_accounts", params={"limit": 20, "starting_after": first_page.json()["data"][-1]["id"]}
        )
        missing = await client.get("/v1/connector_accounts/ca_01M00000000000000000000000")
        types = [event["type"] for event in (await client.get("/v1/events", params={"limit": 100})).json()["data"]]
    assert (full.status_code, full.json()["error"]["code"]) == (400, "connector_accounts_full")
    assert (updated.json()["label"], updated.json()["metadata"]) == (None, {"a": "1"})
    assert (unknown.status_code, unknown.json()["error"]["param"]) == (400, "credentials")
    assert (disabled.json()["status"], read.json()["status"]) == ("disabled", "disabled")
    assert disabled.json()["disabled_at"] is not None
    assert again.json() == disabled.json(), "disabling again changes nothing"
    assert after.status_code == 200, "a disabled account frees its place"
    listed = [item["id"] for item in first_page.json()["data"] + second_page.json()["data"]]
    assert listed == [after.json()["id"], *reversed(made)], "newest first, disabled ones too"
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "resource_missing")
    assert types.count("connector_account.created") == ACCOUNTS_PER_MODE_MAX + 1
    assert (types.count("connector_account.updated"), types.count("connector_account.disabled")) == (1, 1)
    async with platform.owner.transaction() as connection:
        actions = await connection.fetch(
            "SELECT action_type FROM audit_events WHERE resource_id = $1 ORDER BY created_at", made[0]
        )
    assert [row["action_type"] for row in actions] == [
        "connector_account.create",
        "connector_account.update",
        "connector_account.disable",
    ]


async def test_the_feature_matrix(platform: Platform, merchant: Credentials) -> None:
    live = await platform.api_key(merchant.merchant_id, livemode=True)
    async with platform.client(merchant) as client, platform.client(live) as live_client:
        matrix = (await client.get("/v1/connectors")).json()
        live_matrix = (await live_client.get("/v1/connectors")).json()
    published = documented_properties(connectors_router)
    for connector in matrix["data"]:
        check_resource(Connector, connector, published["Connector"])
    by_id = {connector["id"]: connector for connector in matrix["data"]}
    assert (matrix["object"], matrix["url"], matrix["has_more"]) == ("list", "/v1/connectors", False)
    assert list(by_id) == ["sandbox", "stripe", "braintree", "adyen"]
    assert {name for name, connector in by_id.items() if connector["available"]} == platform.services.connectors.available
    assert by_id["stripe"]["credentials"] == ["secret_key", "webhook_secret"]
    assert by_id["sandbox"]["modes"] == ["test"]
    assert by_id["braintree"]["base_url"] == "https://api.sandbox.braintreegateway.com"
    # Braintree runs 3-D Secure in its client SDK only (ADR 28).
    assert by_id["braintree"]["capabilities"]["three_d_secure"] is False
    assert by_id["adyen"]["capabilities"] == {
        "currencies": None,
        "brands": ["amex", "diners", "discover", "jcb", "mastercard", "unionpay", "visa"],
        "manual_capture": True,
        "partial_capture": True,
        "partial_refunds": True,
        "multiple_refunds": True,
        "three_d_secure": True,
        "notifications": True,
    }
    live_adyen = next(connector for connector in live_matrix["data"] if connector["id"] == "adyen")
    assert live_adyen["credentials"] == ["api_key", "merchant_account", "hmac_key", "live_url_prefix"]
    assert live_adyen["base_url"] == "https://{live_url_prefix}-checkout-live.adyenpayments.com"


async def test_scopes(platform: Platform, merchant: Credentials) -> None:
    reader = await platform.api_key(merchant.merchant_id, scopes=["connectors:read"])
    other = await platform.api_key(merchant.merchant_id, scopes=["customers:read"])
    async with platform.client(reader) as client:
        matrix = await client.get("/v1/connectors")
        listed = await client.get("/v1/connector_accounts")
        write = await _create(client, connector="sandbox")
    async with platform.client(other) as client:
        no_matrix = await client.get("/v1/connectors")
    assert (matrix.status_code, listed.status_code) == (200, 200)
    for refused in (write, no_matrix):
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "scope_missing")
