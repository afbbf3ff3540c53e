"""Rulesets and lists over the real app and database: versions, the live and shadow places and
rollback, rules checked against the catalogue and the merchant's lists, list items written down
by their kind, refusals naming the field, modes, and the audit rows of every change."""

import asyncio
from typing import Any

import httpx
import pytest

from bastion.audit import repository as audit_repository
from tests.support.platform import Credentials, Platform

FOREIGN_AND_LARGE = "block if :card_country: != :ip_country: and :amount_in_usd: > 500"


def _error(answer: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = answer.json()["error"]
    return error


async def _ruleset(client: httpx.AsyncClient, *rules: str | dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"rules": [rule if isinstance(rule, dict) else {"rule": rule} for rule in rules], **fields}
    created = await client.post("/v1/risk/rulesets", json=body)
    assert created.status_code == 200, created.text
    ruleset: dict[str, Any] = created.json()
    return ruleset


async def test_a_ruleset_is_a_checked_numbered_draft(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        first = await _ruleset(
            client,
            {"id": "foreign_large", "rule": FOREIGN_AND_LARGE},
            "review if :charges_per_card_hourly: > 3",
            description="Launch rules",
        )
        second = await _ruleset(client, "request_3ds if :is_new_device: and :amount_in_usd: > 100")
        fetched = (await client.get(f"/v1/risk/rulesets/{first['id']}")).json()
    assert first["id"].startswith("rs_")
    assert (first["object"], first["status"], first["version"], first["livemode"]) == ("risk.ruleset", "draft", 1, False)
    assert first["rules"] == [
        {"id": "foreign_large", "rule": FOREIGN_AND_LARGE, "action": "block"},
        {"id": "rule_2", "rule": "review if :charges_per_card_hourly: > 3", "action": "review"},
    ]
    assert (first["description"], first["activated"], first["retired"]) == ("Launch rules", None, None)
    assert second["version"] == 2
    assert fetched == first


async def test_versions_are_numbered_without_gaps_or_twins_under_concurrency(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        made = await asyncio.gather(*(_ruleset(client, f"block if :amount: > {count}") for count in range(12)))
    assert sorted(ruleset["version"] for ruleset in made) == list(range(1, 13))


async def test_live_shadow_retire_and_rollback(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        v1 = await _ruleset(client, "block if :amount: > 100000")
        v2 = await _ruleset(client, "block if :amount: > 50000")
        v3 = await _ruleset(client, "review if :amount: > 20000")

        live = (await client.post(f"/v1/risk/rulesets/{v1['id']}/activate", json={})).json()
        assert (live["status"], live["retired"]) == ("live", None)
        assert live["activated"] is not None
        again = await client.post(f"/v1/risk/rulesets/{v1['id']}/activate", json={})
        assert again.json() == live, "activating the live ruleset changes nothing"

        shadow = (await client.post(f"/v1/risk/rulesets/{v3['id']}/activate", json={"shadow": True})).json()
        assert shadow["status"] == "shadow"
        replaced = (await client.post(f"/v1/risk/rulesets/{v2['id']}/activate", json={})).json()
        assert replaced["status"] == "live"
        statuses = {ruleset["id"]: ruleset["status"] for ruleset in (await client.get("/v1/risk/rulesets")).json()["data"]}
        assert statuses == {v1["id"]: "retired", v2["id"]: "live", v3["id"]: "shadow"}

        rolled_back = (await client.post(f"/v1/risk/rulesets/{v1['id']}/activate", json={})).json()
        assert rolled_back["status"] == "live"
        assert rolled_back["retired"] is not None, "it keeps when it was retired"
        assert (await client.get(f"/v1/risk/rulesets/{v2['id']}")).json()["status"] == "retired"
        live_only = (await client.get("/v1/risk/rulesets", params={"status": "live"})).json()["data"]
        assert [ruleset["id"] for ruleset in live_only] == [v1["id"]]

        stopped = await client.post(f"/v1/risk/rulesets/{v3['id']}/retire")
        assert stopped.json()["status"] == "retired"
        draft = await _ruleset(client, "block if :amount: > 1")
        refused = await client.post(f"/v1/risk/rulesets/{draft['id']}/retire")
    assert refused.status_code == 400
    assert (_error(refused)["code"], _error(refused)["param"]) == ("risk_ruleset_unexpected_state", "id")


async def test_concurrent_activations_leave_one_live_ruleset(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        made = [await _ruleset(client, f"block if :amount: > {count}") for count in range(8)]
        answers = await asyncio.gather(*(client.post(f"/v1/risk/rulesets/{r['id']}/activate", json={}) for r in made))
        assert [answer.status_code for answer in answers] == [200] * 8
        live = (await client.get("/v1/risk/rulesets", params={"status": "live"})).json()["data"]
        retired = (await client.get("/v1/risk/rulesets", params={"status": "retired", "limit": 100})).json()["data"]
    assert len(live) == 1
    assert len(retired) == 7


@pytest.mark.parametrize(
    ("rules", "param", "message"),
    [
        (["block if :nope: > 3"], "rules[0][rule]", "Rule 1: Unknown attribute :nope:"),
        (
            ["block if :amount: > 1", "review if :amount > 3"],
            "rules[1][rule]",
            "Rule 2: Unexpected character ':' (line 1, column 11)",
        ),
        (["allow if :customer_email: in @nobody"], "rules[0][rule]", "Rule 1: Unknown list @nobody"),
        (["block if :card_brand: < 'visa'"], "rules[0][rule]", "Rule 1: < compares numbers, not a string (line 1, column 10)"),
    ],
)
async def test_a_bad_rule_is_refused_naming_it_and_the_position(
    platform: Platform, merchant: Credentials, rules: list[str], param: str, message: str
) -> None:
    async with platform.client(merchant) as client:
        refused = await client.post("/v1/risk/rulesets", json={"rules": [{"rule": rule} for rule in rules]})
        listed = (await client.get("/v1/risk/rulesets")).json()["data"]
    assert refused.status_code == 400
    assert (_error(refused)["code"], _error(refused)["param"]) == ("risk_rule_invalid", param)
    assert _error(refused)["message"].startswith(message), _error(refused)["message"]
    assert listed == [], "nothing is written"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "rules", "parameter_missing"),
        ({"rules": [{"rule": "block if :amount: > 1"}] * 201}, "rules", "parameter_invalid"),
        ({"rules": [{"rule": ""}]}, "rules[0][rule]", "parameter_invalid"),
        ({"rules": [{"rule": "block if :amount: > 1" + " " * 2000}]}, "rules[0][rule]", "parameter_invalid"),
        ({"rules": [{"id": "Bad Id", "rule": "block if :amount: > 1"}]}, "rules[0][id]", "parameter_invalid"),
        (
            {"rules": [{"id": "twice", "rule": "block if :amount: > 1"}, {"id": "twice", "rule": "block if :amount: > 2"}]},
            "rules[1][id]",
            "parameter_invalid",
        ),
        ({"rules": [{"rule": "block if :card_bin: = '4242424242424242'"}]}, "rules[0][rule]", "parameter_invalid"),
        ({"rules": [], "surprise": 1}, "surprise", "parameter_unknown"),
    ],
)
async def test_bad_ruleset_bodies_are_refused_naming_the_field(
    platform: Platform, merchant: Credentials, body: dict[str, Any], param: str, code: str
) -> None:
    async with platform.client(merchant) as client:
        refused = await client.post("/v1/risk/rulesets", json=body)
    assert refused.status_code == 400, refused.text
    assert (_error(refused)["code"], _error(refused)["param"]) == (code, param)
    assert "4242424242424242" not in refused.text


async def test_lists_and_items_written_down_by_kind(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        created = await client.post("/v1/risk/lists", json={"alias": "vip_emails", "name": "VIP customers", "item_type": "email"})
        assert created.status_code == 200, created.text
        vip = created.json()
        added = await client.post(f"/v1/risk/lists/{vip['id']}/items", json={"value": "  Ada@Example.COM "})
        twice = await client.post(f"/v1/risk/lists/{vip['id']}/items", json={"value": "ada@example.com"})
        bad = await client.post(f"/v1/risk/lists/{vip['id']}/items", json={"value": "not an email"})
        ips = (await client.post("/v1/risk/lists", json={"alias": "blocked", "name": "Blocked", "item_type": "ip"})).json()
        ranges = [
            (await client.post(f"/v1/risk/lists/{ips['id']}/items", json={"value": value})).json()["value"]
            for value in ("203.0.113.7/24", "2001:DB8::1", "198.51.100.9")
        ]
        countries = (await client.post("/v1/risk/lists", json={"alias": "watch", "name": "Watch", "item_type": "country"})).json()
        country = (await client.post(f"/v1/risk/lists/{countries['id']}/items", json={"value": "fr"})).json()
        items = (await client.get(f"/v1/risk/lists/{vip['id']}/items")).json()
        removed = await client.delete(f"/v1/risk/lists/{vip['id']}/items/{added.json()['id']}")
        after = (await client.get(f"/v1/risk/lists/{vip['id']}/items")).json()["data"]
        taken = await client.post("/v1/risk/lists", json={"alias": "vip_emails", "name": "Again", "item_type": "email"})
    assert (vip["object"], vip["alias"], vip["item_type"]) == ("risk.list", "vip_emails", "email")
    assert vip["id"].startswith("rsl_")
    assert added.json()["value"] == "ada@example.com"
    assert added.json()["id"].startswith("rsli_")
    assert twice.json() == added.json(), "a value the list holds answers its item"
    assert (bad.status_code, _error(bad)["param"]) == (400, "value")
    assert "email address" in _error(bad)["message"]
    assert ranges == ["203.0.113.0/24", "2001:db8::1", "198.51.100.9"]
    assert country["value"] == "FR"
    assert [item["id"] for item in items["data"]] == [added.json()["id"]]
    assert items["url"] == f"/v1/risk/lists/{vip['id']}/items"
    assert removed.json() == {"id": added.json()["id"], "object": "risk.list_item", "deleted": True}
    assert after == []
    assert (taken.status_code, _error(taken)["code"], _error(taken)["param"]) == (400, "risk_list_alias_taken", "alias")


async def test_a_list_named_by_a_live_or_shadow_ruleset_cannot_be_deleted(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        vip = (await client.post("/v1/risk/lists", json={"alias": "vip", "name": "VIP", "item_type": "email"})).json()
        ruleset = await _ruleset(client, "allow if :customer_email: in @vip")
        await client.post(f"/v1/risk/rulesets/{ruleset['id']}/activate", json={"shadow": True})
        in_use = await client.delete(f"/v1/risk/lists/{vip['id']}")
        await client.post(f"/v1/risk/rulesets/{ruleset['id']}/retire")
        deleted = await client.delete(f"/v1/risk/lists/{vip['id']}")
        gone = await client.get(f"/v1/risk/lists/{vip['id']}")
        # The retired ruleset names a list that is gone: activating it again is refused.
        revived = await client.post(f"/v1/risk/rulesets/{ruleset['id']}/activate", json={})
    assert (in_use.status_code, _error(in_use)["code"]) == (400, "risk_list_in_use")
    assert ruleset["id"] in _error(in_use)["message"]
    assert deleted.json() == {"id": vip["id"], "object": "risk.list", "deleted": True}
    assert gone.status_code == 404
    assert (_error(revived)["code"], _error(revived)["param"]) == ("risk_rule_invalid", "rules[0][rule]")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"alias": "Bad-Alias", "name": "x", "item_type": "email"}, "alias", "parameter_invalid"),
        ({"alias": "ok", "name": "x", "item_type": "phone"}, "item_type", "parameter_invalid"),
        ({"alias": "ok", "item_type": "email"}, "name", "parameter_missing"),
        ({"alias": "ok", "name": "4242 4242 4242 4242", "item_type": "email"}, "name", "parameter_invalid"),
    ],
)
async def test_bad_list_bodies_are_refused_naming_the_field(
    platform: Platform, merchant: Credentials, body: dict[str, Any], param: str, code: str
) -> None:
    async with platform.client(merchant) as client:
        refused = await client.post("/v1/risk/lists", json=body)
    assert refused.status_code == 400, refused.text
    assert (_error(refused)["code"], _error(refused)["param"]) == (code, param)


async def test_the_catalogue_is_served(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        served = (await client.get("/v1/risk/attributes")).json()
    by_name = {attribute["name"]: attribute for attribute in served["data"]}
    assert by_name["amount_in_usd"] == {
        "name": "amount_in_usd",
        "type": "number",
        "list_type": None,
        "description": by_name["amount_in_usd"]["description"],
    }
    assert by_name["ip_address"]["list_type"] == "ip"
    assert "charges_per_card_hourly" in by_name


async def test_modes_are_separate_and_every_change_is_audited(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        ruleset = await _ruleset(client, "block if :amount: > 1")
        await client.post(f"/v1/risk/rulesets/{ruleset['id']}/activate", json={})
    live_key = await platform.api_key(merchant.merchant_id, livemode=True)
    async with platform.client(live_key) as client:
        assert (await client.get(f"/v1/risk/rulesets/{ruleset['id']}")).status_code == 404
        live_ruleset = await _ruleset(client, "block if :amount: > 2")
    assert live_ruleset["version"] == 1, "each mode numbers its own versions"
    async with platform.owner.transaction() as connection:
        rows = await audit_repository.events_for_resource(connection, ruleset["id"])
    assert [(row["action_type"], row["actor"]) for row in rows] == [
        ("risk.ruleset.create", merchant.key_id),
        ("risk.ruleset.live", merchant.key_id),
    ]
