"""Assessments on the real database: the live ruleset decides in Radar's order with the
attempt's values, velocity and lists; the decision is stored once with what it was made from
and announced; a shadow ruleset is recorded beside it; the sandbox's risk test cards; and the
time budget with each failure policy, against a database that makes the assessment wait."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from bastion.kernel.ids import new_id
from bastion.platform.db import Actor, Tenant
from bastion.risk import Action, Assessor, Attempt, RedisVelocity
from tests.support.platform import Credentials, Platform
from tests.support.postgres import free_port

ACTOR = Actor(id="test")
FINGERPRINT = "0123456789abcdef0123456789abcdef"


def _attempt(merchant: Credentials, *, amount: int = 2_000, currency: str = "USD", last4: str = "4242", **fields: Any) -> Attempt:
    return Attempt(
        attempt_id=new_id("ch"),
        payment_intent_id=new_id("pi"),
        amount=amount,
        currency=currency,
        card_brand="visa",
        card_funding="credit",
        card_fingerprint=fields.pop("card_fingerprint", FINGERPRINT),
        card_last4=last4,
        livemode=False,
        **fields,
    )


async def _live(client: httpx.AsyncClient, *rules: str, shadow: bool = False) -> str:
    made = await client.post("/v1/risk/rulesets", json={"rules": [{"rule": rule} for rule in rules]})
    assert made.status_code == 200, made.text
    activated = await client.post(f"/v1/risk/rulesets/{made.json()['id']}/activate", json={"shadow": shadow})
    assert activated.status_code == 200, activated.text
    ruleset_id: str = made.json()["id"]
    return ruleset_id


async def _decision_row(platform: Platform, decision_id: str) -> dict[str, Any]:
    async with platform.owner.transaction() as connection:
        row = await connection.fetchrow("SELECT * FROM risk_decisions WHERE id = $1", decision_id)
    assert row is not None
    return dict(row)


async def test_the_live_ruleset_decides_and_the_decision_is_stored_once(platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    async with platform.client(merchant) as client:
        ruleset_id = await _live(client, "review if :attempts_per_card_hourly: > 2", "block if :amount_in_usd: > 500")
    assessor = Assessor(platform.services.database, budget_ms=5_000)
    small = await assessor.assess(tenant, ACTOR, _attempt(merchant))
    large = _attempt(merchant, amount=60_000)
    blocked = await assessor.assess(tenant, ACTOR, large)
    again = await assessor.assess(tenant, ACTOR, large)
    reviewed = await assessor.assess(tenant, ACTOR, _attempt(merchant))
    assert (small.action, small.rule, small.risk_level, small.risk_score) == (Action.ALLOW, None, "normal", 0)
    assert blocked.action == Action.BLOCK
    assert blocked.rule == {"id": "rule_2", "rule": "block if :amount_in_usd: > 500", "action": "block"}
    assert again == blocked, "an attempt is assessed once"
    assert reviewed.action == Action.REVIEW, "the third attempt on the card within the hour: the asked again one not counted"
    stored = await _decision_row(platform, blocked.id)
    assert (stored["attempt_id"], stored["ruleset_id"], stored["rule_id"]) == (large.attempt_id, ruleset_id, "rule_2")
    assert stored["reasons"] == [
        {
            "id": "rule_2",
            "rule": "block if :amount_in_usd: > 500",
            "action": "block",
            "values": {"amount_in_usd": "600.00"},
            "decided": True,
        }
    ]
    assert stored["attributes"]["values"]["attempts_per_card_hourly"] == 2
    async with platform.client(merchant) as client:
        announced = (await client.get("/v1/events", params={"type": "risk.decision"})).json()["data"]
    assert {event["data"]["object"]["id"] for event in announced} == {small.id, blocked.id, reviewed.id}


async def test_actions_follow_radars_order_and_lists(platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    async with platform.client(merchant) as client:
        vip = (await client.post("/v1/risk/lists", json={"alias": "vip", "name": "VIP", "item_type": "email"})).json()
        await client.post(f"/v1/risk/lists/{vip['id']}/items", json={"value": "ada@example.com"})
        blocked_ips = (await client.post("/v1/risk/lists", json={"alias": "bad_ips", "name": "Bad", "item_type": "ip"})).json()
        await client.post(f"/v1/risk/lists/{blocked_ips['id']}/items", json={"value": "203.0.113.0/24"})
        await _live(
            client,
            "block if :amount: > 1000",
            "allow if :customer_email: in @vip",
            "request_3ds if :ip_address: in @bad_ips",
        )
    assessor = Assessor(platform.services.database, budget_ms=5_000)
    vip_attempt = await assessor.assess(tenant, ACTOR, _attempt(merchant, customer_email="Ada@Example.com"))
    other = await assessor.assess(tenant, ACTOR, _attempt(merchant, customer_email="eve@example.com"))
    challenged = await assessor.assess(
        tenant, ACTOR, _attempt(merchant, customer_email="ada@example.com", ip_address="203.0.113.9")
    )
    assert (vip_attempt.action, vip_attempt.rule and vip_attempt.rule["id"]) == (Action.ALLOW, "rule_2")
    assert other.action == Action.BLOCK
    assert challenged.action == Action.REQUEST_3DS, "request_3ds is taken before allow"
    stored = await _decision_row(platform, challenged.id)
    assert ["bad_ips", "203.0.113.9"] in stored["attributes"]["list_hits"]


async def test_a_shadow_ruleset_is_recorded_beside_and_decides_nothing(platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    async with platform.client(merchant) as client:
        live_id = await _live(client, "review if :amount: > 100000")
        shadow_id = await _live(client, "block if :amount: > 1000", shadow=True)
    decided = await Assessor(platform.services.database, budget_ms=5_000).assess(tenant, ACTOR, _attempt(merchant))
    stored = await _decision_row(platform, decided.id)
    assert decided.action == Action.ALLOW
    assert stored["ruleset_id"] == live_id
    assert stored["shadow"] == {"ruleset_id": shadow_id, "action": "block", "rule_id": "rule_1"}


async def test_the_sandbox_risk_test_cards(platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    assessor = Assessor(platform.services.database, budget_ms=5_000)
    highest = await assessor.assess(tenant, ACTOR, _attempt(merchant, last4="4954"))
    elevated = await assessor.assess(tenant, ACTOR, _attempt(merchant, last4="9235"))
    async with platform.client(merchant) as client:
        await _live(client, "allow if :amount: > 0")
    always = await assessor.assess(tenant, ACTOR, _attempt(merchant, last4="0019"))
    assert (highest.action, highest.risk_level, highest.rule and highest.rule["id"]) == (
        Action.BLOCK,
        "highest",
        "default_block_highest_risk",
    )
    assert (elevated.action, elevated.risk_level, elevated.risk_score) == (Action.ALLOW, "elevated", 70)
    assert (always.action, always.risk_level, always.rule and always.rule["id"]) == (
        Action.BLOCK,
        "highest",
        "test_card_always_blocked",
    )


@asynccontextmanager
async def _card_held(platform: Platform, merchant: Credentials) -> AsyncIterator[None]:
    """Another transaction holds the card's velocity row: an assessment counting it waits."""
    async with platform.owner.transaction() as connection:
        await connection.execute(
            "INSERT INTO risk_velocity_subjects VALUES ($1, false, $2, 0, 0, 0, 0, now(), now()) "
            "ON CONFLICT (merchant_id, livemode, subject) DO UPDATE SET attempts = risk_velocity_subjects.attempts",
            merchant.merchant_id,
            f"card:{FINGERPRINT}",
        )
        yield


async def test_past_the_time_budget_the_failure_policy_decides(platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    assessor = Assessor(platform.services.database, budget_ms=5_000)
    for policy, action in (("fail_open", Action.ALLOW), ("fail_closed", Action.REVIEW)):
        async with platform.client(merchant) as client:
            set_to = await client.post("/v1/risk/settings", json={"budget_ms": 200, "failure_policy": policy})
            assert set_to.status_code == 200, set_to.text
        async with _card_held(platform, merchant):
            started = asyncio.get_running_loop().time()
            decided = await assessor.assess(tenant, ACTOR, _attempt(merchant))
            waited = asyncio.get_running_loop().time() - started
        assert (decided.action, decided.risk_level) == (action, "not_assessed")
        assert 0.2 <= waited < 2, waited
        stored = await _decision_row(platform, decided.id)
        assert stored["reasons"][0]["id"] == policy


async def test_a_velocity_store_that_does_not_answer_leaves_it_to_the_failure_policy(
    platform: Platform, merchant: Credentials
) -> None:
    """Redis down (nothing listens at its address): the assessment is `not_assessed`, and the
    merchant's policy decides, as when the budget runs out."""
    tenant = Tenant(merchant.merchant_id, livemode=False)
    velocity = RedisVelocity(f"redis://127.0.0.1:{free_port()}/0")
    assessor = Assessor(platform.services.database, budget_ms=5_000, velocity=velocity)
    try:
        for policy, action in (("fail_open", Action.ALLOW), ("fail_closed", Action.REVIEW)):
            async with platform.client(merchant) as client:
                set_to = await client.post("/v1/risk/settings", json={"failure_policy": policy})
                assert set_to.status_code == 200, set_to.text
            decided = await assessor.assess(tenant, ACTOR, _attempt(merchant))
            assert (decided.action, decided.risk_level) == (action, "not_assessed")
            stored = await _decision_row(platform, decided.id)
            assert stored["reasons"][0]["id"] == policy
            assert stored["reasons"][0]["rule"] == f"the velocity store did not answer: {policy}"
    finally:
        await velocity.close()
