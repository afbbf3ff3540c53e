"""Payments honour the risk engine, through the API with the real vault and sandbox acquirer: a
blocked attempt is a `card_declined` / `fraudulent` decline that never reaches the acquirer,
`request_3ds` forces the challenge, `review` authorizes without capturing, and every charge's
outcome carries the decision's `risk_level`, `risk_score` and `rule`."""

import dataclasses
from typing import Any

import httpx

from bastion.api.app import create_app
from bastion.payments import intents
from bastion.platform.idempotency import PhasedCommands
from bastion.platform.settings import Settings
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import VISA, payment_method

ALWAYS_BLOCKED = "4100000000000019"
HIGHEST_RISK = "4000000000004954"
ELEVATED_RISK = "4000000000009235"


async def _live(platform: Platform, merchant: Credentials, *rules: str) -> None:
    async with platform.client(merchant) as client:
        made = await client.post("/v1/risk/rulesets", json={"rules": [{"rule": rule} for rule in rules]})
        assert made.status_code == 200, made.text
        activated = await client.post(f"/v1/risk/rulesets/{made.json()['id']}/activate", json={})
        assert activated.status_code == 200, activated.text


async def _pay(platform: Platform, merchant: Credentials, method: str, amount: int = 2_000) -> httpx.Response:
    async with platform.client(merchant) as client:
        body = {"amount": amount, "currency": "EUR", "payment_method": method, "confirm": True}
        return await client.post("/v1/payment_intents", json=body)


async def _charge(platform: Platform, merchant: Credentials, charge_id: str) -> dict[str, Any]:
    async with platform.client(merchant) as client:
        charge: dict[str, Any] = (await client.get(f"/v1/charges/{charge_id}")).json()
    return charge


async def _at_acquirer(platform: Platform, charge_id: str) -> int:
    async with platform.owner.transaction() as connection:
        count: int = await connection.fetchval("SELECT count(*) FROM acquirer.payments WHERE reference = $1", charge_id)
    return count


async def test_a_blocked_attempt_is_declined_as_fraudulent_and_never_reaches_the_acquirer(
    platform: Platform, vault: ApiProcess, acquirer: ApiProcess, merchant: Credentials
) -> None:
    method = await payment_method(platform, vault, merchant, number=ALWAYS_BLOCKED)
    answer = await _pay(platform, merchant, method)
    assert answer.status_code == 402, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == ("card_error", "card_declined", "fraudulent")
    assert error["payment_intent"]["status"] == "requires_payment_method"
    assert error["payment_intent"]["last_payment_error"]["decline_code"] == "fraudulent"
    charge = await _charge(platform, merchant, error["charge"])
    assert charge["status"] == "failed"
    assert charge["outcome"] == {
        "network_status": "not_sent_to_network",
        "type": "blocked",
        "reason": "rule",
        "seller_message": "Bastion blocked this payment as too risky.",
        "risk_level": "highest",
        "risk_score": 95,
        "rule": {
            "id": "test_card_always_blocked",
            "action": "block",
            "predicate": "the sandbox's always-blocked test card",
        },
    }
    assert await _at_acquirer(platform, charge["id"]) == 0


async def test_the_live_rules_block_challenge_review_and_allow(
    platform: Platform, vault: ApiProcess, acquirer: ApiProcess, merchant: Credentials
) -> None:
    await _live(
        platform,
        merchant,
        "block if :amount: >= 50000",
        "request_3ds if :amount: = 30000 or :amount: = 70000",
        "review if :amount: = 15000",
    )
    blocked = await _pay(platform, merchant, await payment_method(platform, vault, merchant), amount=60_000)
    challenged = await _pay(platform, merchant, await payment_method(platform, vault, merchant), amount=30_000)
    reviewed = await _pay(platform, merchant, await payment_method(platform, vault, merchant), amount=15_000)
    allowed = await _pay(platform, merchant, await payment_method(platform, vault, merchant, number=ELEVATED_RISK))
    # Radar's order: a request_3ds rule is taken before a block rule that matches too.
    challenged_first = await _pay(platform, merchant, await payment_method(platform, vault, merchant), amount=70_000)

    assert blocked.status_code == 402, blocked.text
    blocked_charge = await _charge(platform, merchant, blocked.json()["error"]["charge"])
    assert blocked_charge["outcome"]["rule"] == {"id": "rule_1", "action": "block", "predicate": "block if :amount: >= 50000"}
    assert await _at_acquirer(platform, blocked_charge["id"]) == 0

    assert challenged.status_code == 200, challenged.text
    assert challenged.json()["status"] == "requires_action", "a card the issuer would not challenge, challenged"
    assert challenged.json()["next_action"]["type"] == "redirect_to_url"
    assert challenged_first.json()["status"] == "requires_action"

    assert reviewed.json()["status"] == "requires_capture", "an attempt in review is authorized, not captured"
    reviewed_charge = await _charge(platform, merchant, reviewed.json()["latest_charge"])
    assert (reviewed_charge["captured"], reviewed_charge["outcome"]["rule"]["action"]) == (False, "review")

    assert allowed.json()["status"] == "succeeded"
    allowed_charge = await _charge(platform, merchant, allowed.json()["latest_charge"])
    assert allowed_charge["outcome"] | {} == {
        "network_status": "approved_by_network",
        "type": "authorized",
        "reason": None,
        "seller_message": "Payment complete.",
        "risk_level": "elevated",
        "risk_score": 70,
        "rule": None,
    }


async def test_the_default_rule_blocks_the_highest_risk_and_velocity_counts_attempts(
    platform: Platform, vault: ApiProcess, acquirer: ApiProcess, merchant: Credentials
) -> None:
    highest = await _pay(platform, merchant, await payment_method(platform, vault, merchant, number=HIGHEST_RISK))
    assert highest.status_code == 402, highest.text
    charge = await _charge(platform, merchant, highest.json()["error"]["charge"])
    assert (charge["outcome"]["reason"], charge["outcome"]["rule"]["id"]) == ("rule", "default_block_highest_risk")

    await _live(platform, merchant, "block if :attempts_per_card_hourly: > 2")
    method = await payment_method(platform, vault, merchant, number=VISA)
    answers = [await _pay(platform, merchant, method) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 402]
    assert answers[2].json()["error"]["decline_code"] == "fraudulent"


async def test_with_the_risk_engine_off_every_attempt_goes_on_unassessed(
    platform: Platform, vault: ApiProcess, acquirer: ApiProcess, merchant: Credentials
) -> None:
    """BASTION_RISK_ENGINE=off: the API's confirms skip the assessment (an operator's choice)."""
    commands = platform.services.commands
    unassessed = dict(commands.registry) | {
        intents.CONFIRM: intents.confirm_phases(
            platform.services.database, platform.services.connectors, None, platform.services.velocity
        )
    }
    services = dataclasses.replace(
        platform.services, commands=PhasedCommands(commands.database, unassessed, hold_timeout_s=commands.hold_timeout_s)
    )
    method = await payment_method(platform, vault, merchant, number=ALWAYS_BLOCKED)
    transport = httpx.ASGITransport(app=create_app(services), client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bastion.test", headers=merchant.headers) as client:
        body = {"amount": 2_000, "currency": "EUR", "payment_method": method, "confirm": True}
        paid = await client.post("/v1/payment_intents", json=body)
    assert paid.status_code == 200, paid.text
    charge = await _charge(platform, merchant, paid.json()["latest_charge"])
    assert (charge["outcome"]["risk_level"], charge["outcome"]["risk_score"], charge["outcome"]["rule"]) == (
        "not_assessed",
        None,
        None,
    )
    async with platform.owner.transaction() as connection:
        assert await connection.fetchval("SELECT count(*) FROM risk_decisions WHERE attempt_id = $1", charge["id"]) == 0


async def test_with_velocity_in_redis_confirms_count_attempts_and_outcomes_there(
    test_database: TestDatabase, settings: Settings, redis_url: str, vault: ApiProcess, acquirer: ApiProcess
) -> None:
    """BASTION_RISK_VELOCITY_REDIS_URL, wired by bootstrap: a confirm's attempt is counted in
    Redis, its outcome too, and nothing of it in PostgreSQL's counters."""
    platform = Platform(test_database, dataclasses.replace(settings, risk_velocity_redis_url=redis_url))
    try:
        merchant = await platform.merchant()
        method = await payment_method(platform, vault, merchant)
        paid = [await _pay(platform, merchant, method) for _ in range(2)]
        assert [answer.status_code for answer in paid] == [200, 200], paid[-1].text
        async with platform.owner.transaction() as connection:
            values = await connection.fetchval(
                "SELECT attributes->'values' FROM risk_decisions WHERE attempt_id = $1", paid[1].json()["latest_charge"]
            )
            in_postgres = await connection.fetchval(
                "SELECT count(*) FROM risk_velocity_subjects WHERE merchant_id = $1", merchant.merchant_id
            )
    finally:
        await platform.close()
    assert (values["attempts_per_card_hourly"], values["charges_per_card_hourly"], values["declines_per_card_hourly"]) == (
        2,
        1,
        0,
    )
    assert in_postgres == 0
