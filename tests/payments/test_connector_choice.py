"""Which connector account a payment goes through: the one its intent is pinned to, else the
merchant's oldest enabled account, else (test mode) the sandbox acquirer; each charge records
its account and why it went there; a pinned account that is disabled, unknown or another
merchant's is refused before anything is written."""

import dataclasses
from typing import Any, cast

import httpx
import pytest

from bastion.connectors import KINDS, ConnectorKind
from bastion.platform.settings import SANDBOX_CONNECTOR
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess
from tests.support.vault import payment_method


async def _sandbox_account(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/connector_accounts", json={"connector": "sandbox", "credentials": {}})
    assert response.status_code == 200, response.text
    account_id: str = response.json()["id"]
    return account_id


async def _pay(client: httpx.AsyncClient, method: str, **fields: Any) -> httpx.Response:
    body = {"amount": 1000, "currency": "EUR", "payment_method": method, "confirm": True} | fields
    return await client.post("/v1/payment_intents", json=body)


async def _charge(client: httpx.AsyncClient, intent: dict[str, Any]) -> dict[str, Any]:
    charge: dict[str, Any] = (await client.get(f"/v1/charges/{intent['latest_charge']}")).json()
    return charge


async def test_a_payment_without_accounts_goes_to_the_sandbox(
    platform: Platform, vault: ApiProcess, acquirer: ApiProcess, merchant: Credentials
) -> None:
    method = await payment_method(platform, vault, merchant)
    async with platform.client(merchant) as client:
        paid = await _pay(client, method)
        assert paid.status_code == 200, paid.text
        charge = await _charge(client, paid.json())
    assert (charge["connector"], charge["connector_account"]) == ("sandbox", None)
    assert charge["routing"] == {"attempt": 1, "reason": "sandbox"}


async def test_a_pinned_account_takes_the_payment_and_the_oldest_takes_the_rest(
    platform: Platform, vault: ApiProcess, acquirer: ApiProcess, merchant: Credentials
) -> None:
    method = await payment_method(platform, vault, merchant)
    async with platform.client(merchant) as client:
        oldest = await _sandbox_account(client)
        pinned = await _sandbox_account(client)
        paid = await _pay(client, method, connector_account=pinned)
        assert paid.status_code == 200, paid.text
        assert paid.json()["connector_account"] == pinned
        assert (await _charge(client, paid.json()))["routing"] == {"attempt": 1, "reason": "pinned"}
        unpinned = await _pay(client, await payment_method(platform, vault, merchant))
        charge = await _charge(client, unpinned.json())
    assert (charge["connector_account"], charge["routing"]) == (oldest, {"attempt": 1, "reason": "default"})


@pytest.mark.parametrize("case", ["disabled", "unknown", "another merchant's"])
async def test_a_pinned_account_that_cannot_take_payments_is_refused(
    case: str, platform: Platform, vault: ApiProcess, acquirer: ApiProcess, merchant: Credentials
) -> None:
    method = await payment_method(platform, vault, merchant)
    async with platform.client(merchant) as client:
        if case == "disabled":
            account = await _sandbox_account(client)
            assert (await client.post(f"/v1/connector_accounts/{account}/disable")).status_code == 200
        elif case == "unknown":
            account = "ca_0000000000000000000000000000"
        else:
            async with platform.client(await platform.merchant()) as other:
                account = await _sandbox_account(other)
        before = (await client.get("/v1/payment_intents")).json()["data"]
        refused = await _pay(client, method, connector_account=account)
        after = (await client.get("/v1/payment_intents")).json()["data"]
    error = refused.json()["error"]
    assert (refused.status_code, error["param"]) == ((400 if case == "disabled" else 404), "connector_account")
    assert error["code"] == ("connector_account_disabled" if case == "disabled" else "resource_missing")
    assert after == before


async def test_the_notification_route_of_an_account_refuses_an_unknown_or_mismatched_account(
    platform: Platform, merchant: Credentials
) -> None:
    async with platform.client(merchant) as client:
        account = await _sandbox_account(client)
    async with platform.client() as anonymous:
        unknown = await anonymous.post("/v1/connectors/stripe/notifications/ca_0000000000000000000000000000", content=b"{}")
        mismatched = await anonymous.post(f"/v1/connectors/stripe/notifications/{account}", content=b"{}")
    assert unknown.status_code == mismatched.status_code == 404
    assert mismatched.json()["error"]["param"] == "account"


@pytest.fixture
def modest_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox declared as a connector of EUR only, with no manual or partial capture, no
    partial and no second refund: what a lesser processor offers (the feature matrix)."""
    kind = KINDS[SANDBOX_CONNECTOR]
    lesser = dataclasses.replace(
        kind.capabilities,
        currencies=frozenset({"EUR"}),
        manual_capture=False,
        partial_capture=False,
        partial_refunds=False,
        multiple_refunds=False,
    )
    monkeypatch.setitem(
        cast("dict[str, ConnectorKind]", KINDS), SANDBOX_CONNECTOR, dataclasses.replace(kind, capabilities=lesser)
    )


@pytest.mark.usefixtures("acquirer", "modest_sandbox")
@pytest.mark.parametrize(
    ("fields", "param"), [({"currency": "USD"}, "currency"), ({"capture_method": "manual"}, "capture_method")]
)
async def test_a_payment_its_connector_cannot_take_is_refused_naming_the_field(
    fields: dict[str, str], param: str, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    method = await payment_method(platform, vault, merchant)
    async with platform.client(merchant) as client:
        intent = (await client.post("/v1/payment_intents", json={"amount": 1000, "currency": "EUR"} | fields)).json()
        refused = await client.post(f"/v1/payment_intents/{intent['id']}/confirm", json={"payment_method": method})
        after = (await client.get(f"/v1/payment_intents/{intent['id']}")).json()
        charges = (await client.get("/v1/charges", params={"payment_intent": intent["id"]})).json()["data"]
    error = refused.json()["error"]
    assert (refused.status_code, error["code"], error["param"]) == (400, "connector_capability_unsupported", param)
    assert (after["status"], charges) == ("requires_payment_method", [])


@pytest.mark.usefixtures("acquirer")
async def test_a_partial_capture_or_refund_its_connector_cannot_make_is_refused(
    platform: Platform, vault: ApiProcess, merchant: Credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    method = await payment_method(platform, vault, merchant)
    async with platform.client(merchant) as client:
        held = (await _pay(client, method, capture_method="manual")).json()
        paid = (await _pay(client, await payment_method(platform, vault, merchant))).json()
        # The connector loses those capabilities after the authorizations: the checks are at capture and refund.
        kind = KINDS[SANDBOX_CONNECTOR]
        lesser = dataclasses.replace(kind.capabilities, partial_capture=False, partial_refunds=False, multiple_refunds=False)
        kinds = cast("dict[str, ConnectorKind]", KINDS)
        monkeypatch.setitem(kinds, SANDBOX_CONNECTOR, dataclasses.replace(kind, capabilities=lesser))
        part = await client.post(f"/v1/payment_intents/{held['id']}/capture", json={"amount_to_capture": 400})
        part_refund = await client.post("/v1/refunds", json={"payment_intent": paid["id"], "amount": 400})
        whole = await client.post(f"/v1/payment_intents/{held['id']}/capture", json={})
        whole_refund = await client.post("/v1/refunds", json={"payment_intent": paid["id"]})
    assert (part.status_code, part.json()["error"]["param"]) == (400, "amount_to_capture")
    assert (part_refund.status_code, part_refund.json()["error"]["param"]) == (400, "amount")
    assert (whole.status_code, whole_refund.status_code) == (200, 200)


@pytest.mark.usefixtures("acquirer")
async def test_live_routing_rules_choose_the_account_and_the_charge_says_why(
    platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    async with platform.client(merchant) as client:
        big, rest = await _sandbox_account(client), await _sandbox_account(client)
        rule = {"condition": ":amount: >= 10000", "strategy": {"type": "priority", "connector_accounts": [big, rest]}}
        made = await client.post("/v1/routing_rules", json={"rules": [rule], "default": [rest, big]})
        assert made.status_code == 200, made.text
        assert (await client.post(f"/v1/routing_rules/{made.json()['id']}/activate")).status_code == 200
        large = await _pay(client, await payment_method(platform, vault, merchant), amount=12000)
        small = await _pay(client, await payment_method(platform, vault, merchant), amount=2000)
        large_charge, small_charge = await _charge(client, large.json()), await _charge(client, small.json())
    assert (large_charge["connector_account"], small_charge["connector_account"]) == (big, rest)
    assert large_charge["routing"]["reason"] == small_charge["routing"]["reason"] == "routing_rules"
    assert (large_charge["routing"]["rule"], small_charge["routing"]["rule"]) == (0, None)
    assert large_charge["routing"]["routing_rules"] == made.json()["id"]
