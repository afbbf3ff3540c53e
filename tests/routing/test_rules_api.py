"""Routing rules over the real app and database: versions, the live place and rollback, every
refusal naming its field (conditions checked by the risk engine's language over routing's
catalogue, splits, accounts that must be the merchant's enabled ones in the mode), the audit
rows and events of every change, modes, other merchants, and scopes."""

import asyncio
from typing import Any

import httpx
import pytest

from bastion.audit import repository as audit_repository
from bastion.routing.resources import RoutingRules
from bastion.routing.routes import router
from tests.support.platform import Credentials, Platform
from tests.support.resources import check_resource, documented_properties


def _error(answer: httpx.Response) -> tuple[int, str, str | None]:
    error = answer.json()["error"]
    return answer.status_code, error["code"], error["param"]


async def accounts(client: httpx.AsyncClient, count: int) -> list[str]:
    """`count` sandbox connector accounts of the client's merchant, in its mode."""
    made = [await client.post("/v1/connector_accounts", json={"connector": "sandbox"}) for _ in range(count)]
    assert all(answer.status_code == 200 for answer in made), [answer.text for answer in made]
    return [answer.json()["id"] for answer in made]


async def create(client: httpx.AsyncClient, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    made = await client.post("/v1/routing_rules", json=body, headers={"Idempotency-Key": key} if key else None)
    assert made.status_code == 200, made.text
    created: dict[str, Any] = made.json()
    return created


async def activate(client: httpx.AsyncClient, rules_id: str) -> dict[str, Any]:
    answer = await client.post(f"/v1/routing_rules/{rules_id}/activate")
    assert answer.status_code == 200, answer.text
    activated: dict[str, Any] = answer.json()
    return activated


async def test_a_version_is_a_checked_numbered_draft(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        a, b, c = await accounts(client, 3)
        body: dict[str, Any] = {
            "rules": [
                {
                    "condition": ":currency: = 'EUR' and :amount: >= 50000",
                    "strategy": {"type": "priority", "connector_accounts": [b, a]},
                },
                {
                    "strategy": {
                        "type": "volume_split",
                        "splits": [{"connector_account": a, "percent": 70}, {"connector_account": c, "percent": 30}],
                    }
                },
            ],
            "default": [a],
            "description": "EU first",
            "metadata": {"team": "payments"},
        }
        first = await create(client, body, key="rr-1")
        replayed = await client.post("/v1/routing_rules", json=body, headers={"Idempotency-Key": "rr-1"})
        second = await create(
            client,
            {"rules": [{"strategy": {"type": "success_rate", "connector_accounts": [a, b]}}], "default": [c], "max_attempts": 4},
        )
        fetched = (await client.get(f"/v1/routing_rules/{first['id']}")).json()
        listed = (await client.get("/v1/routing_rules")).json()
    published = documented_properties(router)["RoutingRules"]
    for resource in (first, second):
        check_resource(RoutingRules, resource, published)
    assert first["id"].startswith("rr_")
    assert (first["object"], first["version"], first["status"], first["livemode"]) == ("routing_rules", 1, "draft", False)
    assert first["rules"] == [body["rules"][0], {"condition": None, "strategy": body["rules"][1]["strategy"]}]
    assert (first["default"], first["max_attempts"], first["description"], first["metadata"]) == (
        [a],
        2,
        "EU first",
        {"team": "payments"},
    )
    assert (first["activated"], first["retired"]) == (None, None)
    assert second["version"] == 2
    assert second["rules"][0]["strategy"] == {"type": "success_rate", "connector_accounts": [a, b], "exploration_percent": 5}
    assert second["max_attempts"] == 4
    assert replayed.json() == first
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert fetched == first
    assert (listed["object"], listed["url"], [item["id"] for item in listed["data"]]) == (
        "list",
        "/v1/routing_rules",
        [second["id"], first["id"]],
    )


async def test_versions_are_numbered_without_gaps_or_twins_under_concurrency(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        [account] = await accounts(client, 1)
        made = await asyncio.gather(*(create(client, {"rules": [], "default": [account]}) for _ in range(10)))
    assert sorted(rules["version"] for rules in made) == list(range(1, 11))


async def test_live_retired_and_rollback_with_their_audit_rows_and_events(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        [account] = await accounts(client, 1)
        none_live = await client.get("/v1/routing_rules/live")
        v1, v2 = [await create(client, {"rules": [], "default": [account]}) for _ in range(2)]
        live = await activate(client, v1["id"])
        again = await activate(client, v1["id"])
        replaced = await activate(client, v2["id"])
        retired = (await client.get(f"/v1/routing_rules/{v1['id']}")).json()
        rolled_back = await activate(client, v1["id"])
        current = (await client.get("/v1/routing_rules/live")).json()
        v2_after = (await client.get(f"/v1/routing_rules/{v2['id']}")).json()
        types = [event["type"] for event in (await client.get("/v1/events", params={"limit": 100})).json()["data"]]
    assert _error(none_live) == (404, "resource_missing", None)
    assert (live["status"], live["retired"]) == ("live", None)
    assert live["activated"] is not None
    assert again == live, "activating the live version changes nothing"
    assert (replaced["status"], retired["status"]) == ("live", "retired")
    assert retired["retired"] is not None
    assert rolled_back["status"] == "live"
    assert rolled_back["retired"] is not None, "it keeps when it was retired"
    assert current == rolled_back
    assert v2_after["status"] == "retired"
    assert types.count("routing_rules.created") == 2
    assert types.count("routing_rules.activated") == 3
    async with platform.owner.transaction() as connection:
        v1_rows = await audit_repository.events_for_resource(connection, v1["id"])
        v2_rows = await audit_repository.events_for_resource(connection, v2["id"])
    assert [(row["action_type"], row["actor"]) for row in v1_rows] == [
        ("routing_rules.create", merchant.key_id),
        ("routing_rules.activate", merchant.key_id),
        ("routing_rules.retire", merchant.key_id),
        ("routing_rules.activate", merchant.key_id),
    ]
    assert [row["action_type"] for row in v2_rows] == ["routing_rules.create", "routing_rules.activate", "routing_rules.retire"]


async def test_concurrent_activations_leave_one_live_version(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        [account] = await accounts(client, 1)
        made = [await create(client, {"rules": [], "default": [account]}) for _ in range(6)]
        answers = await asyncio.gather(*(client.post(f"/v1/routing_rules/{rules['id']}/activate") for rules in made))
        statuses = [item["status"] for item in (await client.get("/v1/routing_rules")).json()["data"]]
    assert [answer.status_code for answer in answers] == [200] * 6
    assert sorted(statuses) == ["live"] + ["retired"] * 5


MISSING = object()


def priority(*accounts: str, condition: str | None = None) -> dict[str, Any]:
    """A rule trying `accounts` in order, for the payments `condition` matches (every one without it)."""
    rule: dict[str, Any] = {"strategy": {"type": "priority", "connector_accounts": list(accounts)}}
    return rule | ({"condition": condition} if condition is not None else {})


async def test_each_refusal_names_its_field(platform: Platform, merchant: Credentials) -> None:
    other = await platform.merchant(name="Other merchant")
    live = await platform.api_key(merchant.merchant_id, livemode=True)
    async with platform.client(other) as client:
        [others] = await accounts(client, 1)
    async with platform.client(live) as client:
        made = await client.post(
            "/v1/connector_accounts",
            json={
                "connector": "stripe",
                "credentials": {"secret_key": "sk_live_" + "a" * 24, "webhook_secret": "whsec_" + "b" * 24},
            },
        )
        live_account = made.json()["id"]
    async with platform.client(merchant) as client:
        a, b, disabled = await accounts(client, 3)
        assert (await client.post(f"/v1/connector_accounts/{disabled}/disable")).status_code == 200

        def split(*shares: tuple[str, int]) -> dict[str, Any]:
            return {"strategy": {"type": "volume_split", "splits": [{"connector_account": x, "percent": p} for x, p in shares]}}

        cases: list[tuple[dict[str, Any], tuple[int, str, str]]] = [
            (
                {"rules": [priority(a, condition=":currency: = 'EUR' and :amount > 3")]},
                (400, "routing_rule_invalid", "rules[0][condition]"),
            ),
            (
                {"rules": [priority(a), priority(b, condition=":nope: = 1")]},
                (400, "routing_rule_invalid", "rules[1][condition]"),
            ),
            ({"rules": [priority(a, condition=":card_country: in @vip")]}, (400, "routing_rule_invalid", "rules[0][condition]")),
            ({"rules": [priority(a, condition=":ip_country: = 'FR'")]}, (400, "routing_rule_invalid", "rules[0][condition]")),
            ({"rules": [priority(a, condition=":amount: = 'EUR'")]}, (400, "routing_rule_invalid", "rules[0][condition]")),
            ({"rules": [priority(a, condition=":card_brand: < 'visa'")]}, (400, "routing_rule_invalid", "rules[0][condition]")),
            ({"rules": [priority(a, condition="block if :amount: > 1")]}, (400, "routing_rule_invalid", "rules[0][condition]")),
            ({"rules": [split((a, 60), (b, 30))]}, (400, "routing_rule_invalid", "rules[0][strategy][splits]")),
            ({"rules": [priority(a, b, a)]}, (400, "routing_rule_invalid", "rules[0][strategy][connector_accounts][2]")),
            ({"rules": [], "default": [a, a]}, (400, "routing_rule_invalid", "default[1]")),
            (
                {"rules": [priority(a), split((a, 50), (disabled, 50))]},
                (400, "routing_account_unavailable", "rules[1][strategy][splits][1][connector_account]"),
            ),
            (
                {"rules": [priority(a, others)]},
                (400, "routing_account_unavailable", "rules[0][strategy][connector_accounts][1]"),
            ),
            ({"rules": [], "default": [live_account]}, (400, "routing_account_unavailable", "default[0]")),
            ({"rules": [], "default": ["ca_01M00000000000000000000000"]}, (400, "routing_account_unavailable", "default[0]")),
            ({"rules": [], "default": ["4242424242424242"]}, (400, "routing_account_unavailable", "default[0]")),
            ({"rules": [], "default": MISSING}, (400, "parameter_missing", "default")),
            ({"rules": [], "default": []}, (400, "parameter_invalid", "default")),
            ({"rules": [], "default": [a] * 9}, (400, "parameter_invalid", "default")),
            ({"rules": [priority(a)] * 51}, (400, "parameter_invalid", "rules")),
            ({"rules": [], "max_attempts": 5}, (400, "parameter_invalid", "max_attempts")),
            ({"rules": [], "max_attempts": 0}, (400, "parameter_invalid", "max_attempts")),
            (
                {"rules": [split((a, 0), (b, 100))]},
                (400, "parameter_invalid", "rules[0][strategy][volume_split][splits][0][percent]"),
            ),
            (
                {"rules": [{"strategy": {"type": "success_rate", "connector_accounts": [a], "exploration_percent": 51}}]},
                (400, "parameter_invalid", "rules[0][strategy][success_rate][exploration_percent]"),
            ),
            (
                {"rules": [{"strategy": {"type": "random", "connector_accounts": [a]}}]},
                (400, "parameter_invalid", "rules[0][strategy]"),
            ),
            ({"rules": [priority(a, condition="")]}, (400, "parameter_invalid", "rules[0][condition]")),
            (
                {"rules": [priority(a, condition=":card_bin: = '4242424242424242'")]},
                (400, "parameter_invalid", "rules[0][condition]"),
            ),
            ({"rules": [], "description": "card 4242 4242 4242 4242"}, (400, "parameter_invalid", "description")),
        ]
        sent = [{name: value for name, value in ({"default": [a]} | body).items() if value is not MISSING} for body, _ in cases]
        answers = [await client.post("/v1/routing_rules", json=body) for body in sent]
        listed = (await client.get("/v1/routing_rules")).json()["data"]
    for (body, expected), answer in zip(cases, answers, strict=True):
        assert _error(answer) == expected, (body, answer.text)
        assert "4242424242424242" not in answer.text
    assert listed == [], "nothing is written"
    syntax = answers[0].json()["error"]["message"]
    assert syntax == "Rule 1: Unexpected character ':' (line 1, column 24)", syntax
    unknown = answers[1].json()["error"]["message"]
    assert unknown.startswith("Rule 2: Unknown attribute :nope: (docs/routing.md, Conditions lists them)"), unknown
    assert "(line 1, column 1)" in unknown


async def test_an_account_disabled_since_stops_the_activation(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        a, b = await accounts(client, 2)
        rules = await create(client, {"rules": [priority(a, b)], "default": [a]})
        await client.post(f"/v1/connector_accounts/{b}/disable")
        refused = await client.post(f"/v1/routing_rules/{rules['id']}/activate")
        still = (await client.get(f"/v1/routing_rules/{rules['id']}")).json()
    assert _error(refused) == (400, "routing_account_unavailable", "rules[0][strategy][connector_accounts][1]")
    assert still["status"] == "draft"


async def test_modes_and_merchants_see_their_own_rules_only(platform: Platform, merchant: Credentials) -> None:
    other = await platform.merchant(name="Other merchant")
    live = await platform.api_key(merchant.merchant_id, livemode=True)
    async with platform.client(merchant) as client:
        [account] = await accounts(client, 1)
        rules = await activate(client, (await create(client, {"rules": [], "default": [account]}))["id"])
    for credentials in (other, live):
        async with platform.client(credentials) as client:
            reads = [
                await client.get(f"/v1/routing_rules/{rules['id']}"),
                await client.post(f"/v1/routing_rules/{rules['id']}/activate"),
                await client.get("/v1/routing_rules/live"),
                await client.get("/v1/routing_rules", params={"starting_after": rules["id"]}),
            ]
            listed = (await client.get("/v1/routing_rules")).json()["data"]
        assert [_error(answer)[:2] for answer in reads] == [(404, "resource_missing")] * 4
        assert listed == []


@pytest.mark.parametrize(("scopes", "reads", "writes"), [(["routing:read"], 200, 403), (["connectors:read"], 403, 403)])
async def test_scopes(platform: Platform, merchant: Credentials, scopes: list[str], reads: int, writes: int) -> None:
    async with platform.client(merchant) as client:
        [account] = await accounts(client, 1)
        rules = await create(client, {"rules": [], "default": [account]})
    key = await platform.api_key(merchant.merchant_id, scopes=scopes)
    async with platform.client(key) as client:
        listed = await client.get("/v1/routing_rules")
        read = await client.get(f"/v1/routing_rules/{rules['id']}")
        created = await client.post("/v1/routing_rules", json={"rules": [], "default": [account]})
        activated = await client.post(f"/v1/routing_rules/{rules['id']}/activate")
    assert (listed.status_code, read.status_code) == (reads, reads)
    assert (created.status_code, activated.status_code) == (writes, writes)
