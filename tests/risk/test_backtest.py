"""Backtests and the shadow report over real payments: a candidate ruleset scored against the
attempts later disputed or refunded as fraud, with the values recorded at the time, by
`bastion risk backtest` and `bastion risk shadow-report` as real processes."""

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.acquirer import deliver, notifications_of
from tests.support.cli import run_bastion
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import DISPUTED, payment_method

CANDIDATE = {"rules": [{"id": "big", "rule": "block if :amount: > 8000"}, {"id": "small", "rule": "review if :amount: < 2000"}]}


async def _pay(client: httpx.AsyncClient, method: str, amount: int) -> dict[str, Any]:
    body = {"amount": amount, "currency": "EUR", "payment_method": method, "confirm": True}
    answer = await client.post("/v1/payment_intents", json=body)
    assert answer.status_code == 200, answer.text
    intent: dict[str, Any] = answer.json()
    return intent


async def test_a_candidate_is_scored_against_later_fraud_and_the_shadow_against_the_live(
    *,
    platform: Platform,
    vault: ApiProcess,
    acquirer: ApiProcess,
    merchant: Credentials,
    test_database: TestDatabase,
    tmp_path: Path,
) -> None:
    methods = [await payment_method(platform, vault, merchant) for _ in range(4)]
    disputed_method = await payment_method(platform, vault, merchant, number=DISPUTED)
    async with platform.client(merchant) as client:
        shadow = await client.post("/v1/risk/rulesets", json={"rules": [{"rule": "block if :amount: > 8000"}]})
        await client.post(f"/v1/risk/rulesets/{shadow.json()['id']}/activate", json={"shadow": True})
        refunded = await _pay(client, methods[0], 9_000)
        disputed = await _pay(client, disputed_method, 9_500)
        for method in methods[1:3]:
            await _pay(client, method, 1_000)
        await _pay(client, methods[3], 9_000)
        refund = await client.post("/v1/refunds", json={"payment_intent": refunded["id"], "reason": "fraudulent"})
        assert refund.status_code == 200, refund.text
        for notification in await notifications_of(test_database, disputed["latest_charge"]):
            assert (await deliver(client, platform.settings, notification)).status_code == 200
        [dispute] = (await client.get("/v1/disputes", params={"charge": disputed["latest_charge"]})).json()["data"]
    assert dispute["reason"] == "fraudulent"

    candidate = tmp_path / "candidate.json"
    candidate.write_text(json.dumps(CANDIDATE))
    ran = await run_bastion(
        "risk", "backtest", "--ruleset", str(candidate), "--merchant", merchant.merchant_id, "--json", env=test_database.env()
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    report = json.loads(ran.stdout)
    assert (report["decisions"], report["fraud"], report["not_assessed"]) == (5, 2, 0)
    assert report["actions"] == {"block": 3, "review": 2}
    assert report["rules"] == [
        {
            "id": "big",
            "rule": "block if :amount: > 8000",
            "action": "block",
            "hits": 3,
            "fraud_hits": 2,
            "precision": 0.6667,
            "recall": 1.0,
        },
        {
            "id": "small",
            "rule": "review if :amount: < 2000",
            "action": "review",
            "hits": 2,
            "fraud_hits": 0,
            "precision": 0.0,
            "recall": 0.0,
        },
    ]

    shadowed = await run_bastion("risk", "shadow-report", "--merchant", merchant.merchant_id, "--json", env=test_database.env())
    assert shadowed.returncode == 0, shadowed.stderr
    assert json.loads(shadowed.stdout) == {
        "compared": 5,
        "agreed": 2,
        "agreement": 0.4,
        "pairs": [{"live": "allow", "shadow": "allow", "count": 2}, {"live": "allow", "shadow": "block", "count": 3}],
    }

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rules": [{"rule": "block if :nope: > 1"}]}))
    refused = await run_bastion(
        "risk", "backtest", "--ruleset", str(bad), "--merchant", merchant.merchant_id, env=test_database.env()
    )
    assert refused.returncode == 1
    assert "rule 1 (rule_1): Unknown attribute :nope:" in refused.stderr
