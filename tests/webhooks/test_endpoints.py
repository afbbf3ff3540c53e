"""Webhook endpoints through the API: the signing secret shown once (not in reads, replays,
audit rows or the stored answer) and sealed at rest, event subscriptions checked against the
registered types, URLs through the SSRF guard per mode, updates, the signature scheme, rotation
with its overlap, deletion, the limit per mode and the list."""

import base64
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.exceptions import InvalidTag

from bastion.kernel.ids import new_id
from bastion.webhooks import EndpointSecrets
from bastion.webhooks.domain import ENDPOINTS_PER_MODE_MAX, ROTATION_OVERLAP
from bastion.webhooks.resources import WebhookEndpoint, WebhookEndpointWithSecret
from bastion.webhooks.routes import router
from tests.support.platform import Credentials, Platform
from tests.support.resources import check_resource, documented_properties

URL = "https://hooks.example.com/bastion"
EVENTS = ["payment_intent.*", "charge.refunded"]


async def _create(client: httpx.AsyncClient, key: str | None = None, **fields: Any) -> httpx.Response:
    body = {"url": URL, "enabled_events": EVENTS} | fields
    return await client.post("/v1/webhook_endpoints", json=body, headers={"Idempotency-Key": key} if key else None)


async def _row(platform: Platform, endpoint_id: str) -> dict[str, Any]:
    async with platform.owner.transaction() as connection:
        row = await connection.fetchrow("SELECT * FROM webhook_endpoints WHERE id = $1", endpoint_id)
    assert row is not None
    return dict(row)


def _secrets(platform: Platform) -> EndpointSecrets:
    secrets: EndpointSecrets = platform.services.webhook_secrets
    return secrets


async def test_the_secret_is_shown_once_and_sealed_everywhere_else(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        created = await _create(client, "we-create-1", description="Orders", metadata={"team": "shop"})
        assert created.status_code == 200, created.text
        endpoint = created.json()
        replayed = await _create(client, "we-create-1", description="Orders", metadata={"team": "shop"})
        read = (await client.get(f"/v1/webhook_endpoints/{endpoint['id']}")).json()
    published = documented_properties(router)
    check_resource(WebhookEndpointWithSecret, endpoint, published["WebhookEndpointWithSecret"])
    check_resource(WebhookEndpoint, read, published["WebhookEndpoint"])
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert (endpoint["url"], endpoint["enabled_events"], endpoint["status"], endpoint["ordered"]) == (
        URL,
        EVENTS,
        "enabled",
        False,
    )
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == endpoint | {"secret": None}, "a replay does not show the secret again"
    assert "secret" not in read
    row = await _row(platform, endpoint["id"])
    assert secret.encode() not in row["secret_sealed"]
    assert _secrets(platform).open(endpoint["id"], row["secret_sealed"]) == secret
    async with platform.owner.transaction() as connection:
        stored = await connection.fetch(
            "SELECT response_body FROM idempotency_keys WHERE merchant_id = $1 "
            "UNION ALL SELECT after_state::text FROM audit_events WHERE merchant_id = $1",
            merchant.merchant_id,
        )
    assert stored
    assert all(secret not in str(value["response_body"]) for value in stored)


async def test_subscriptions_name_registered_event_types(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        unknown = await _create(client, enabled_events=["charge.succeeded", "charge.exploded"])
        empty_prefix = await _create(client, enabled_events=["nothing.*"])
        none = await _create(client, enabled_events=[])
        every = await _create(client, enabled_events=["*", "*", "customer.created"])
    assert unknown.status_code == 400, unknown.text
    assert (unknown.json()["error"]["param"], unknown.json()["error"]["code"]) == ("enabled_events[1]", "parameter_invalid")
    assert "charge.exploded" in unknown.json()["error"]["message"]
    assert empty_prefix.json()["error"]["param"] == "enabled_events[0]"
    assert (none.status_code, none.json()["error"]["param"]) == (400, "enabled_events")
    assert every.json()["enabled_events"] == ["*", "customer.created"], "each pattern once, in the order given"


async def test_urls_go_through_the_ssrf_guard_by_mode(platform: Platform, merchant: Credentials) -> None:
    live = await platform.api_key(merchant.merchant_id, livemode=True)
    async with platform.client(merchant) as test_client, platform.client(live) as live_client:
        local = await _create(test_client, url="http://localhost:4242/webhook")
        private = await _create(test_client, url="https://10.1.2.3/hook")
        live_local = await _create(live_client, url="http://localhost:4242/webhook")
        live_metadata = await _create(live_client, url="https://169.254.169.254/latest/meta-data/")
        live_public = await _create(live_client, url="https://HOOKS.example.com:443/x")
    assert local.status_code == 200, local.text
    for refused in (private, live_local, live_metadata):
        assert refused.status_code == 400, refused.text
        assert (refused.json()["error"]["code"], refused.json()["error"]["param"]) == ("url_not_allowed", "url")
    assert live_public.json()["url"] == "https://hooks.example.com/x"
    assert live_public.json()["livemode"] is True


async def test_updates_change_what_was_sent(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        endpoint = (await _create(client, description="Orders", metadata={"a": "1", "b": "2"})).json()
        path = f"/v1/webhook_endpoints/{endpoint['id']}"
        updated = await client.post(path, json={"disabled": True, "description": None, "metadata": {"a": None, "c": "3"}})
        null_url = await client.post(path, json={"url": None})
        bad_url = await client.post(path, json={"url": "https://127.1/"})
        unknown_field = await client.post(path, json={"secret": "whsec_mine"})
        enabled = await client.post(path, json={"disabled": False, "ordered": True, "enabled_events": ["*"]})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["status"], updated.json()["description"], updated.json()["metadata"]) == (
        "disabled",
        None,
        {"b": "2", "c": "3"},
    )
    assert updated.json()["url"] == URL
    assert (null_url.status_code, null_url.json()["error"]["param"]) == (400, "url")
    assert (bad_url.status_code, bad_url.json()["error"]["code"]) == (400, "url_not_allowed")
    assert (unknown_field.status_code, unknown_field.json()["error"]["param"]) == (400, "secret")
    assert (enabled.json()["status"], enabled.json()["ordered"], enabled.json()["enabled_events"]) == ("enabled", True, ["*"])


async def test_the_signature_scheme_is_chosen_at_creation_and_changed_by_update(
    platform: Platform, merchant: Credentials
) -> None:
    async with platform.client(merchant) as client:
        default = (await _create(client)).json()
        chosen = (await _create(client, signature_scheme="stripe")).json()
        path = f"/v1/webhook_endpoints/{chosen['id']}"
        unchanged = await client.post(path, json={"description": "Stripe's way"})
        switched = await client.post(path, json={"signature_scheme": "standard_webhooks"})
        read = (await client.get(path)).json()
        refusals = [
            await _create(client, signature_scheme="v1"),
            await _create(client, signature_scheme=None),
            await client.post(path, json={"signature_scheme": "Stripe"}),
            await client.post(path, json={"signature_scheme": None}),
        ]
    assert (default["signature_scheme"], chosen["signature_scheme"]) == ("standard_webhooks", "stripe")
    assert unchanged.json()["signature_scheme"] == "stripe", "left out, it stays"
    assert switched.json()["signature_scheme"] == read["signature_scheme"] == "standard_webhooks"
    for refused in refusals:
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == "signature_scheme", refused.text


async def test_endpoints_stored_before_the_choice_are_standard_webhooks(platform: Platform, merchant: Credentials) -> None:
    """The migration's default stands for every endpoint written without a scheme, and the
    database takes no scheme but the two."""
    async with platform.client(merchant) as client:
        endpoint = (await _create(client)).json()
    row = await _row(platform, endpoint["id"])
    older = {name: value for name, value in row.items() if name != "signature_scheme"} | {"id": new_id("we")}
    async with platform.owner.transaction() as connection:
        await connection.execute(
            f"INSERT INTO webhook_endpoints ({', '.join(older)}) VALUES ({', '.join(f'${n}' for n in range(1, len(older) + 1))})",
            *older.values(),
        )
    async with platform.client(merchant) as client:
        assert (await client.get(f"/v1/webhook_endpoints/{older['id']}")).json()["signature_scheme"] == "standard_webhooks"
    with pytest.raises(asyncpg.CheckViolationError, match="ck_webhook_endpoints_signature_scheme"):
        async with platform.owner.transaction() as connection:
            await connection.execute("UPDATE webhook_endpoints SET signature_scheme = 'v0' WHERE id = $1", endpoint["id"])


async def test_a_rotated_secret_keeps_the_old_one_for_its_overlap(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        endpoint = (await _create(client)).json()
        before = await _row(platform, endpoint["id"])
        rotated = await client.post(f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", headers={"Idempotency-Key": "rot-1"})
        replayed = await client.post(
            f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", headers={"Idempotency-Key": "rot-1"}
        )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != endpoint["secret"]
    assert replayed.json()["secret"] is None
    row = await _row(platform, endpoint["id"])
    secrets = _secrets(platform)
    assert secrets.open(endpoint["id"], row["secret_sealed"]) == new_secret
    assert secrets.open(endpoint["id"], row["previous_secret_sealed"]) == endpoint["secret"]
    assert row["previous_secret_expires_at"] - row["updated_at"] == ROTATION_OVERLAP
    assert row["updated_at"] > before["updated_at"] - timedelta(seconds=1)


async def test_a_sealed_secret_opens_only_for_its_own_endpoint(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        first, second = [(await _create(client)).json() for _ in range(2)]
    sealed = (await _row(platform, first["id"]))["secret_sealed"]
    with pytest.raises(InvalidTag):
        _secrets(platform).open(second["id"], sealed)


async def test_delete_limit_and_list(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        made = [(await _create(client, url=f"{URL}/{n}")).json()["id"] for n in range(ENDPOINTS_PER_MODE_MAX)]
        full = await _create(client)
        deleted = await client.delete(f"/v1/webhook_endpoints/{made[0]}")
        gone = await client.get(f"/v1/webhook_endpoints/{made[0]}")
        again = await _create(client)
        first_page = await client.get("/v1/webhook_endpoints", params={"limit": 10})
        second_page = await client.get(
            "/v1/webhook_endpoints", params={"limit": 10, "starting_after": first_page.json()["data"][-1]["id"]}
        )
        deleted_cursor = await client.get("/v1/webhook_endpoints", params={"starting_after": made[0]})
    assert (full.status_code, full.json()["error"]["code"]) == (400, "webhook_endpoints_full")
    assert deleted.json() == {"id": made[0], "object": "webhook_endpoint", "deleted": True}
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "resource_missing")
    assert again.status_code == 200, "a deleted endpoint frees its place"
    listed = [item["id"] for item in first_page.json()["data"] + second_page.json()["data"]]
    assert listed == [again.json()["id"], *reversed(made[1:])], "newest first, deleted ones left out"
    assert (first_page.json()["has_more"], second_page.json()["has_more"]) == (True, False)
    assert deleted_cursor.status_code == 404


async def test_bad_bodies_name_their_field(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        no_url = await client.post("/v1/webhook_endpoints", json={"enabled_events": ["*"]})
        not_a_list = await _create(client, enabled_events="*")
        too_long = await _create(client, url="https://example.com/" + "a" * 2100)
        card_in_description = await _create(client, description="card 4242 4242 4242 4242")
        ordered_text = await _create(client, ordered="yes")
    for answer, param in (
        (no_url, "url"),
        (not_a_list, "enabled_events"),
        (too_long, "url"),
        (card_in_description, "description"),
        (ordered_text, "ordered"),
    ):
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == param, answer.text
    assert "4242 4242" not in card_in_description.text
