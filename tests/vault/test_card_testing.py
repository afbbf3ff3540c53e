"""Card testing and the tokenization budget (issue 12, items 1 and 2): test mode takes only the
sandbox's test cards, a test key's fingerprints say nothing of live ones, a client that runs
many cards is throttled and recorded once while other shoppers go on, and one client cannot
spend a shop's tokenization budget."""

import asyncpg
import pytest

from bastion.api import authentication
from bastion.kernel.errors import AuthenticationFailed
from bastion.merchants import Principal
from bastion.platform.db import AnyRow, Connection, plain_dsn
from bastion.vault import repository
from bastion.vault.domain import TEST_CARD_NUMBERS
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase, free_port, running_vault
from tests.support.vault import card, settings_for, tokenize, tokenize_in_process, vault_in_process

ATTACKER, SHOPPER = "203.0.113.7", "198.51.100.20"
# A Luhn-valid number that is not one of the sandbox's (Braintree documents it as a test card).
NOT_A_SANDBOX_CARD = "4111111111111111"
CARD_TESTING_PER_CLIENT = 20


def _luhn_failing(index: int) -> str:
    """Distinct Visa-shaped numbers whose check digit is wrong: refused as `incorrect_number`."""
    body = f"4000{index:011d}"
    digits = [int(digit) for digit in reversed(body)]
    total = sum(digit if position % 2 else sum(divmod(digit * 2, 10)) for position, digit in enumerate(digits))
    return body + str((10 - total % 10 + 1) % 10)


def _as(ip: str) -> dict[str, str]:
    # The vault's uvicorn takes X-Forwarded-For from loopback only (its `forwarded_allow_ips`).
    return {"X-Forwarded-For": ip}


async def _owner_fetch(database: TestDatabase, query: str, *arguments: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(plain_dsn(database.owner_url))
    try:
        return await connection.fetch(query, *arguments)
    finally:
        await connection.close()


async def test_test_mode_takes_only_the_sandbox_cards(
    vault: ApiProcess, merchant: Credentials, test_database: TestDatabase
) -> None:
    refused = await tokenize(vault, merchant, {"card": card(number=NOT_A_SANDBOX_CARD)})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == ("live_card_in_test_mode", "card[number]")
    assert NOT_A_SANDBOX_CARD not in refused.text
    for number in sorted(TEST_CARD_NUMBERS):
        cvc = "1234" if number.startswith(("34", "37")) else "123"
        taken = await tokenize(vault, merchant, {"card": card(number=number, cvc=cvc)})
        assert taken.status_code == 200, (number[-4:], taken.text)
    cards = await _owner_fetch(test_database, "SELECT count(*) FROM vault.cards WHERE merchant_id = $1", merchant.merchant_id)
    assert cards[0]["count"] == len(TEST_CARD_NUMBERS), "the refused card left nothing behind"


async def test_one_card_has_different_fingerprints_in_test_and_live(platform: Platform, test_database: TestDatabase) -> None:
    in_test = await platform.merchant()
    in_live = await platform.api_key(in_test.merchant_id, livemode=True)
    async with vault_in_process(settings_for(test_database, vault_local_keyring_in_live=True)) as vault:
        tokens = [await tokenize_in_process(vault, key.publishable) for key in (in_test, in_test, in_live)]
    rows = await _owner_fetch(
        test_database,
        "SELECT t.id, c.fingerprint, c.livemode FROM vault.tokens t JOIN vault.cards c ON c.id = t.card_id WHERE t.id = ANY($1)",
        tokens,
    )
    fingerprints = {row["id"]: (row["fingerprint"], row["livemode"]) for row in rows}
    (test_1, _), (test_2, _), (live, livemode) = (fingerprints[token] for token in tokens)
    assert livemode
    assert test_1 == test_2, "one card, one merchant, one mode: one fingerprint"
    assert test_1 != live, "a test key cannot confirm a live card by its fingerprint"


async def test_a_client_running_many_cards_is_throttled_and_recorded_once(
    platform: Platform, merchant: Credentials, test_database: TestDatabase
) -> None:
    limits = {
        "BASTION_VAULT_CARD_TESTING_PER_CLIENT": str(CARD_TESTING_PER_CLIENT),
        "BASTION_VAULT_CARD_TESTING_PER_KEY": "500",
    }
    sandbox_cards = [number for number in sorted(TEST_CARD_NUMBERS) if not number.startswith(("34", "37"))]
    numbers = sandbox_cards[:CARD_TESTING_PER_CLIENT] + [_luhn_failing(index) for index in range(30)]
    assert len(set(numbers)) == 50
    with running_vault(test_database, limits, ports=(free_port(), free_port())) as vault:
        answers = [await tokenize(vault, merchant, {"card": card(number=number)}, headers=_as(ATTACKER)) for number in numbers]
        shopper = await tokenize(vault, merchant, headers=_as(SHOPPER))
    statuses = [answer.status_code for answer in answers]
    # Twenty distinct cards are allowed; the next attempt (a refused card) passes the limit.
    assert statuses == [200] * CARD_TESTING_PER_CLIENT + [400] + [429] * 29, statuses
    throttled = answers[-1]
    assert throttled.json()["error"]["code"] == "card_testing_suspected"
    assert int(throttled.headers["Retry-After"]) >= 1
    assert shopper.status_code == 200, "another client's shopper still tokenizes with the same key"

    async with platform.client(merchant) as client:
        listed = await client.get("/v1/events", params={"type": "radar.card_testing_suspected"})
    assert listed.status_code == 200, listed.text
    events = listed.json()["data"]
    assert len(events) == 1, "one record per throttle, not per refused request"
    signal = events[0]["data"]["object"]
    assert (signal["object"], signal["subject"], signal["client_ip"]) == ("card_testing_signal", "client_ip", ATTACKER)
    assert (signal["failures"], signal["distinct_cards"], signal["livemode"]) == (1, CARD_TESTING_PER_CLIENT, False)
    audit = await _owner_fetch(
        test_database,
        "SELECT actor, resource_id, host(ip_address) AS ip FROM audit_events WHERE merchant_id = $1 AND action_type = $2",
        merchant.merchant_id,
        "card_testing.suspected",
    )
    assert [(row["actor"], row["resource_id"], row["ip"]) for row in audit] == [("vault", signal["id"], ATTACKER)]


async def test_one_client_cannot_spend_a_shops_tokenization_budget(merchant: Credentials, test_database: TestDatabase) -> None:
    limits = {"BASTION_VAULT_TOKENIZE_PER_IP_PER_S": "1", "BASTION_VAULT_TOKENIZE_PER_IP_BURST": "5"}
    with running_vault(test_database, limits, ports=(free_port(), free_port())) as vault:
        flood = [await tokenize(vault, merchant, headers=_as(ATTACKER)) for _ in range(8)]
        shopper = await tokenize(vault, merchant, headers=_as(SHOPPER))
    statuses = [answer.status_code for answer in flood]
    assert statuses[:5] == [200] * 5, statuses
    assert 429 in statuses[5:], statuses
    refused = flood[statuses.index(429)].json()["error"]
    assert refused["code"] == "rate_limit"
    assert "per client" in refused["message"]
    assert shopper.status_code == 200, "the shop's key still has budget for its other shoppers"


async def test_unknown_keys_are_looked_up_once_per_interval(
    monkeypatch: pytest.MonkeyPatch, platform: Platform, test_database: TestDatabase
) -> None:
    """Both doors: the vault's publishable keys and the API's secret keys."""
    publishable_lookups: list[str] = []
    secret_lookups: list[str] = []
    vault_lookup, api_lookup = repository.publishable_key, authentication.authenticate

    async def counted_publishable(connection: Connection, digest: str) -> AnyRow | None:
        publishable_lookups.append(digest)
        return await vault_lookup(connection, digest)

    async def counted_secret(connection: Connection, digest: str) -> Principal:
        secret_lookups.append(digest)
        return await api_lookup(connection, digest)

    monkeypatch.setattr(repository, "publishable_key", counted_publishable)
    monkeypatch.setattr(authentication, "authenticate", counted_secret)
    async with vault_in_process(settings_for(test_database)) as vault:
        for _ in range(5):
            with pytest.raises(AuthenticationFailed):
                await vault.publishable_key("pk_test_" + "x" * 40)
    used = platform.services.authenticator
    authenticator = authentication.Authenticator(used.database, used.hasher, ttl_s=10)
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            await authenticator.principal("sk_test_" + "x" * 40)
    assert (len(publishable_lookups), len(secret_lookups)) == (1, 1)
