"""Tokenization on the vault's origin, exchange through the API, and the bad input of both:
a clear 4xx naming the field, and nothing stored."""

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from bastion.platform.db import Tenant, plain_dsn
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase, free_port, running_vault
from tests.support.vault import NEXT_YEAR, VISA, card, exchange, token_id, tokenize


async def vault_rows(database: TestDatabase, merchant_id: str) -> dict[str, int]:
    """One merchant's rows: the vault's janitor may delete other tests' expired rows meanwhile."""
    connection = await asyncpg.connect(plain_dsn(database.owner_url))
    try:
        return {
            table: await connection.fetchval(f"SELECT count(*) FROM vault.{table} WHERE merchant_id = $1", merchant_id)
            for table in ("cards", "cvcs", "tokens")  # table names are constants
        }
    finally:
        await connection.close()


async def test_a_token_becomes_a_payment_method_with_metadata_only(
    platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    response = await tokenize(vault, merchant)
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["id"].startswith("tok_")
    assert token["card"] == {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": NEXT_YEAR, "funding": "credit"}
    assert token["expires_at"] - token["created"] == 15 * 60
    assert VISA not in response.text

    created = await exchange(platform, merchant, token["id"], metadata={"order": "42"})
    assert created.status_code == 200, created.text
    method = created.json()
    assert method["id"].startswith("pm_")
    assert method["card"]["brand"] == "visa"
    assert method["card"]["last4"] == "4242"
    assert len(method["card"]["fingerprint"]) >= 32
    assert VISA not in created.text

    async with platform.client(merchant) as client:
        fetched = await client.get(f"/v1/payment_methods/{method['id']}")
        listed = await client.get("/v1/payment_methods")
    assert fetched.json() == method
    assert [item["id"] for item in listed.json()["data"]] == [method["id"]]


async def test_fingerprints_match_for_one_card_and_merchant_only(platform: Platform, vault: ApiProcess) -> None:
    first, second = await platform.merchant(), await platform.merchant()
    prints = []
    for credentials in (first, first, second):
        created = await exchange(platform, credentials, await token_id(vault, credentials))
        prints.append(created.json()["card"]["fingerprint"])
    other_card = await exchange(platform, first, await token_id(vault, first, number="5555555555554444", cvc="123"))
    assert prints[0] == prints[1], "same card, same merchant"
    assert prints[0] != prints[2], "same card, another merchant"
    assert other_card.json()["card"]["fingerprint"] != prints[0]


async def test_a_token_is_single_use(platform: Platform, vault: ApiProcess, merchant: Credentials) -> None:
    token = await token_id(vault, merchant)
    assert (await exchange(platform, merchant, token)).status_code == 200
    again = await exchange(platform, merchant, token)
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "token_already_used"
    assert again.json()["error"]["param"] == "card[token]"


async def test_a_token_of_another_merchant_is_not_found(platform: Platform, vault: ApiProcess, merchant: Credentials) -> None:
    other = await platform.merchant()
    token = await token_id(vault, other)
    response = await exchange(platform, merchant, token)
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "card[token]"
    # And it still works for its own merchant: the failed attempt used nothing.
    assert (await exchange(platform, other, token)).status_code == 200


async def test_an_expired_token_is_refused(
    platform: Platform, vault: ApiProcess, merchant: Credentials, test_database: TestDatabase
) -> None:
    token = await token_id(vault, merchant)
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        await connection.execute(
            "UPDATE vault.tokens SET created_at = created_at - $2::interval, expires_at = expires_at - $2::interval "
            "WHERE id = $1",
            token,
            timedelta(minutes=16),
        )
    finally:
        await connection.close()
    response = await exchange(platform, merchant, token)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "token_expired"


@pytest.mark.parametrize(
    ("changes", "param", "code"),
    [
        ({"number": "4242424242424241"}, "card[number]", "incorrect_number"),
        ({"number": "4242-4242-4242-42a2"}, "card[number]", "invalid_number"),
        ({"number": "42424242424"}, "card[number]", "invalid_number"),
        ({"number": "42424242424242424242"}, "card[number]", "invalid_number"),
        ({"number": "378282246310005" + "0"}, "card[number]", "invalid_number"),
        ({"exp_month": 13}, "card[exp_month]", "invalid_expiry_month"),
        ({"exp_month": 0}, "card[exp_month]", "invalid_expiry_month"),
        ({"exp_year": 2001}, "card[exp_year]", "invalid_expiry_year"),
        ({"exp_year": NEXT_YEAR + 40}, "card[exp_year]", "invalid_expiry_year"),
        ({"cvc": "12"}, "card[cvc]", "invalid_cvc"),
        ({"cvc": "12a"}, "card[cvc]", "invalid_cvc"),
        ({"name": " "}, "card[name]", "invalid_name"),
        ({"number": 4242424242424242}, "card[number]", "parameter_invalid"),
        ({"number": "4" * 41}, "card[number]", "parameter_invalid"),
    ],
)
async def test_bad_card_input_names_the_field_and_stores_nothing(
    vault: ApiProcess,
    merchant: Credentials,
    test_database: TestDatabase,
    *,
    changes: dict[str, Any],
    param: str,
    code: str,
) -> None:
    await token_id(vault, merchant)  # a card of its own, so that "nothing more" is not "nothing at all"
    before = await vault_rows(test_database, merchant.merchant_id)
    response = await tokenize(vault, merchant, {"card": card(**changes)})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, code)
    assert "4242424242424241" not in response.text
    assert await vault_rows(test_database, merchant.merchant_id) == before


async def test_an_expired_card_is_refused(vault: ApiProcess, merchant: Credentials) -> None:
    last_month = datetime.now(UTC).replace(day=1) - timedelta(days=1)
    response = await tokenize(vault, merchant, {"card": card(exp_month=last_month.month, exp_year=last_month.year)})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "expired_card"


async def test_oversized_unknown_and_unauthenticated_requests_are_refused(vault: ApiProcess, merchant: Credentials) -> None:
    oversized = await tokenize(vault, merchant, {"card": card(), "signals": {"device": {"platform": "x" * 20_000}}})
    assert oversized.status_code == 413
    unknown = await tokenize(vault, merchant, {"card": card(), "pin": "1234"})
    assert (unknown.status_code, unknown.json()["error"]["param"]) == (400, "pin")
    async with httpx.AsyncClient(base_url=vault.url) as client:
        anonymous = await client.post("/v1/tokens", json={"card": card()})
        with_secret = await client.post(
            "/v1/tokens", json={"card": card()}, headers={"Authorization": f"Bearer {merchant.secret}"}
        )
        forged = await client.post("/v1/tokens", json={"card": card()}, headers={"Authorization": "Bearer pk_test_nope"})
    assert anonymous.status_code == 401
    assert with_secret.status_code == 401, "a secret key never goes to the browser-facing vault"
    assert forged.status_code == 401


async def test_the_card_fields_page_is_framed_only_by_registered_origins(
    platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    # Registered first: the vault remembers a publishable key's origins for a few seconds.
    await platform.allow_origin(merchant, "https://shop.example")
    async with httpx.AsyncClient(base_url=vault.url) as client:
        refused = await client.get("/v1/elements/card", params={"key": merchant.publishable, "origin": "https://evil.example"})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "origin_not_allowed"
        page = await client.get("/v1/elements/card", params={"key": merchant.publishable, "origin": "https://shop.example"})
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors https://shop.example" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "x-frame-options" not in page.headers
    assert 'data-parent-origin="https://shop.example"' in page.text


async def test_origins_are_per_mode(platform: Platform, vault: ApiProcess, merchant: Credentials) -> None:
    """A page registered for test mode does not frame live card fields, and the reverse."""
    live = await platform.api_key(merchant.merchant_id, livemode=True)
    # Registered first: the vault remembers a publishable key's origins for a few seconds.
    await platform.allow_origin(merchant, "https://staging.shop.example")
    await platform.allow_origin(live, "https://shop.example", livemode=True)
    answers = {}
    async with httpx.AsyncClient(base_url=vault.url) as client:
        for key, origin in itertools.product((merchant, live), ("https://staging.shop.example", "https://shop.example")):
            page = await client.get("/v1/elements/card", params={"key": key.publishable, "origin": origin})
            answers[key is live, origin] = (page.status_code, page.headers.get("content-security-policy", ""))
    assert answers[False, "https://staging.shop.example"][0] == 200
    assert answers[False, "https://shop.example"][0] == 400
    assert answers[True, "https://staging.shop.example"][0] == 400
    assert answers[True, "https://shop.example"][0] == 200
    assert answers[True, "https://shop.example"][1].endswith("frame-ancestors https://shop.example")


async def test_an_exchange_whose_api_transaction_was_lost_is_taken_over_by_the_retry(
    platform: Platform, vault: ApiProcess, merchant: Credentials, test_database: TestDatabase
) -> None:
    """The vault bound the token, then the API's transaction failed: the retry finishes the
    job under the same payment method id, and no card stays bound to a missing one."""
    token = await token_id(vault, merchant)
    lost_id = "pm_01M85AAAAAAAAAAAAAAAAAAAAA"
    tenant = Tenant(merchant.merchant_id, livemode=False)
    bound = await platform.services.vault.exchange_token(tenant, token, lost_id)
    assert bound["payment_method_id"] == lost_id
    assert VISA not in str(bound)

    retried = await exchange(platform, merchant, token)
    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] == lost_id
    again = await exchange(platform, merchant, token)
    assert (again.status_code, again.json()["error"]["code"]) == (400, "token_already_used")


async def test_concurrent_exchanges_of_one_token_make_one_payment_method(
    platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    token = await token_id(vault, merchant)
    answers = await asyncio.gather(*(exchange(platform, merchant, token) for _ in range(8)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [400] * 7, [answer.text for answer in answers]
    assert {answer.json()["error"]["code"] for answer in answers if answer.status_code == 400} == {"token_already_used"}
    async with platform.client(merchant) as client:
        assert len((await client.get("/v1/payment_methods")).json()["data"]) == 1


async def test_tokenization_is_rate_limited_per_publishable_key(
    platform: Platform, merchant: Credentials, test_database: TestDatabase
) -> None:
    other = await platform.merchant(name="Other shop")
    limits = {"BASTION_RATE_LIMIT_PER_S": "1", "BASTION_RATE_LIMIT_BURST": "3"}
    with running_vault(test_database, limits, ports=(free_port(), free_port())) as limited:
        answers = [await tokenize(limited, merchant) for _ in range(4)]
        others = await tokenize(limited, other)
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert (refused.json()["error"]["type"], refused.json()["error"]["code"]) == ("rate_limit_error", "rate_limit")
    assert int(refused.headers["Retry-After"]) >= 1
    assert others.status_code == 200, "another key's shoppers still tokenize"
