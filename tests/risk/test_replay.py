"""Replays: 1,000 stored decisions of varied attempts come out the same when computed again from
what they were made from, after the lists and rulesets they read have changed; a decision whose
stored action was tampered with does not; `bastion risk replay` says so and exits 1."""

import random

from bastion.kernel.ids import new_id
from bastion.platform.db import Actor, Tenant
from bastion.risk import Assessor, Attempt
from bastion.risk.replay import replay
from tests.support.cli import run_bastion
from tests.support.platform import Credentials, Platform
from tests.support.postgres import TestDatabase

DECISIONS = 1_000
RULES = [
    "allow if :customer_email: in @vip",
    "block if :ip_address: in @bad_ips and :amount: > 1000",
    "request_3ds if :is_new_device: and :amount_in_usd: > 40",
    "review if :attempts_per_card_hourly: > 3",
    "block if :declines_per_card_daily: > 1 or :card_count_for_ip_hourly: > 2",
    "review if is_missing(:customer_email:) and :amount: > 4000",
    "block if :bot_likelihood: >= 60",
]
SHADOW = ["block if :amount: > 2500", "review if :email_domain: = 'example.net'"]


def _attempt(rng: random.Random) -> Attempt:
    behaviour = rng.choice(
        [
            {},
            {"keystroke_count": 16, "pasted": False, "inter_key_interval_ms": {"mean": 120.0, "stdev": 40.0}},
            {"keystroke_count": 0, "pasted": True, "time_to_complete_ms": 900},
            {"keystroke_count": 16, "inter_key_interval_ms": {"mean": 8.0, "stdev": 0.5}, "time_to_complete_ms": 400},
        ]
    )
    device = rng.choice([{}, {"user_agent_sha256": f"{rng.randrange(3):064x}", "timezone": "Europe/Paris"}])
    return Attempt(
        attempt_id=new_id("ch"),
        payment_intent_id=new_id("pi"),
        amount=rng.choice([500, 1_500, 3_000, 5_000]),
        currency=rng.choice(["USD", "EUR"]),
        card_brand="visa",
        card_funding="credit",
        card_fingerprint=f"{rng.randrange(40):032x}",
        card_last4=rng.choice(["4242", "0019", "4954"]),
        livemode=False,
        customer_email=rng.choice([None, "ada@example.com", "eve@example.net", "bob@example.org"]),
        ip_address=rng.choice([None, "203.0.113.9", "198.51.100.1", "2001:db8::7"]),
        signals={"device": device, "behaviour": behaviour},
    )


async def test_a_thousand_decisions_replay_the_same_after_their_inputs_changed(
    platform: Platform, merchant: Credentials, test_database: TestDatabase
) -> None:
    async with platform.client(merchant) as client:
        vip = (await client.post("/v1/risk/lists", json={"alias": "vip", "name": "VIP", "item_type": "email"})).json()
        vip_item = (await client.post(f"/v1/risk/lists/{vip['id']}/items", json={"value": "ada@example.com"})).json()
        bad = (await client.post("/v1/risk/lists", json={"alias": "bad_ips", "name": "Bad", "item_type": "ip"})).json()
        await client.post(f"/v1/risk/lists/{bad['id']}/items", json={"value": "203.0.113.0/24"})
        live = (await client.post("/v1/risk/rulesets", json={"rules": [{"rule": rule} for rule in RULES]})).json()
        shadow = (await client.post("/v1/risk/rulesets", json={"rules": [{"rule": rule} for rule in SHADOW]})).json()
        await client.post(f"/v1/risk/rulesets/{live['id']}/activate", json={})
        await client.post(f"/v1/risk/rulesets/{shadow['id']}/activate", json={"shadow": True})
    tenant = Tenant(merchant.merchant_id, livemode=False)
    assessor = Assessor(platform.services.database, budget_ms=5_000)
    rng = random.Random(20261205)  # noqa: S311  (test data, not a secret)
    decided = [await assessor.assess(tenant, Actor(id="test"), _attempt(rng)) for _ in range(DECISIONS)]
    assert {decision.action.value for decision in decided} == {"allow", "block", "review", "request_3ds"}, "every action"

    # What the decisions read changes: replays must not read it again.
    async with platform.client(merchant) as client:
        await client.delete(f"/v1/risk/lists/{vip['id']}/items/{vip_item['id']}")
        await client.post(f"/v1/risk/rulesets/{live['id']}/retire")
    async with platform.owner.connection() as connection:
        replayed = [await replay(connection, decision.id) for decision in decided]
    different = [each for each in replayed if each is None or not each.same]
    assert different == []
    assert all(each is not None and each.shadow_recomputed is not None for each in replayed)

    tampered = next(decision for decision in decided if decision.action.value == "allow")
    async with platform.owner.transaction() as connection:
        await connection.execute("UPDATE risk_decisions SET action = 'block' WHERE id = $1", tampered.id)
    caught = await run_bastion("risk", "replay", "--decision", tampered.id, env=test_database.env())
    kept = await run_bastion("risk", "replay", "--decision", decided[0].id, "--json", env=test_database.env())
    unknown = await run_bastion("risk", "replay", "--decision", "rd_01M00000000000000000000000", env=test_database.env())
    assert caught.returncode == 1
    assert "a different decision: allow" in caught.stdout
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert '"same": true' in kept.stdout
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "error: no such decision: rd_01M00000000000000000000000")
