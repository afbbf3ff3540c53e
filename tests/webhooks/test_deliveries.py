"""Deliveries end to end on a database of this module's own: the relay's fan-out, the sender
against real HTTP receivers on 127.0.0.1, signatures in each scheme checked by the official
libraries, the schedule over days of a moved clock, dead letters, recovery, ordering and
isolation."""

import asyncio
import dataclasses
import ipaddress
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import stripe
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bastion import bootstrap
from bastion.events import publish_pending
from bastion.platform.db import Database
from bastion.platform.http.outbound import BLOCKED_NETWORKS, DestinationPolicy, guarded_session
from bastion.webhooks.domain import new_secret
from bastion.webhooks.fanout import WebhookFanout
from bastion.webhooks.resources import WebhookDelivery, WebhookDeliveryAttempt
from bastion.webhooks.routes import router
from bastion.webhooks.schedule import ATTEMPTS_MAX, RESPONSE_BODY_KEPT_BYTES, RETRY_AFTER_MAX, RETRY_DELAYS
from bastion.webhooks.sender import SenderLimits, WebhookSender
from tests.platform.test_outbound import ADDRESSES
from tests.security.test_card_numbers_in_free_text import FREE_TEXT, _path
from tests.support.platform import Credentials, Platform
from tests.support.postgres import TestDatabase, migrated_database
from tests.support.receivers import Received, Receiver, Reply, running_receiver
from tests.support.resources import check_resource, documented_properties
from tests.support.vault import settings_for

DRAIN_ROUNDS_MAX = 50
EXACT = SenderLimits(jitter_fraction=0.0)
# The sandbox's test card, with or without separators once they are taken out.
CARD_NUMBER = re.compile("4242424242424242")


@dataclasses.dataclass
class Hooks:
    platform: Platform
    worker: Database

    async def relay(self) -> None:
        """Fan every committed event out into deliveries."""
        fanout = WebhookFanout(self.worker.clock)
        for _ in range(DRAIN_ROUNDS_MAX):
            if await publish_pending(self.worker, [fanout]) == 0:
                return
        raise AssertionError(f"the outbox did not drain in {DRAIN_ROUNDS_MAX} rounds")

    def sender(self, limits: SenderLimits = EXACT, **options: Any) -> WebhookSender:
        return WebhookSender(self.worker, self.platform.services.webhook_secrets, limits=limits, **options)

    async def deliver(self, limits: SenderLimits = EXACT) -> int:
        """Relay, then send what is due now; how many attempts were made."""
        await self.relay()
        sender = self.sender(limits)
        try:
            return await sender.send_due()
        finally:
            await sender.close()

    def shifted(self, delta: timedelta) -> Any:
        return self.platform.clock.shifted(delta)


@pytest.fixture(scope="module")
def own_database(pg_server: tuple[str, Path | None]) -> Iterator[TestDatabase]:
    with migrated_database(*pg_server) as database:
        yield database


@pytest.fixture(scope="module")
async def hooks(own_database: TestDatabase) -> AsyncIterator[Hooks]:
    settings = settings_for(own_database)
    platform = Platform(own_database, settings)
    worker = bootstrap.role_database(settings, own_database.owner_url, own_database.roles.worker, clock=platform.clock)
    yield Hooks(platform, worker)
    await worker.dispose()
    await platform.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


@pytest.fixture
async def shop(hooks: Hooks) -> Credentials:
    return await hooks.platform.merchant()


async def _endpoint(hooks: Hooks, shop: Credentials, url: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "enabled_events": ["customer.*"]} | fields
    async with hooks.platform.client(shop) as client:
        response = await client.post("/v1/webhook_endpoints", json=body)
    assert response.status_code == 200, response.text
    endpoint: dict[str, Any] = response.json()
    return endpoint


async def _get(hooks: Hooks, shop: Credentials, path: str, **params: Any) -> dict[str, Any]:
    async with hooks.platform.client(shop) as client:
        response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _deliveries(hooks: Hooks, shop: Credentials, endpoint_id: str, **params: Any) -> list[dict[str, Any]]:
    page = await _get(hooks, shop, f"/v1/webhook_endpoints/{endpoint_id}/deliveries", limit=100, **params)
    return list(page["data"])


async def _only_delivery(hooks: Hooks, shop: Credentials, endpoint_id: str) -> dict[str, Any]:
    (delivery,) = await _deliveries(hooks, shop, endpoint_id)
    return delivery


async def _events_of_type(hooks: Hooks, shop: Credentials, event_type: str) -> list[dict[str, Any]]:
    return list((await _get(hooks, shop, "/v1/events", type=event_type))["data"])


async def test_a_delivery_is_the_event_signed_as_standard_webhooks_verify_it(
    hooks: Hooks, shop: Credentials, receiver: Receiver
) -> None:
    endpoint = await _endpoint(hooks, shop, f"{receiver.url}/hook")
    customer = await hooks.platform.create_customer(shop, name="Ada")
    assert await hooks.deliver() >= 1

    (request,) = receiver.at("/hook")
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    (event,) = await _events_of_type(hooks, shop, "customer.created")
    assert payload == event
    assert payload["data"]["object"]["id"] == customer["id"]
    assert request.headers["webhook-id"] == event["id"]
    assert request.headers["content-type"] == "application/json"

    signature = request.headers["webhook-signature"]
    for name, value in (
        ("webhook-id", event["id"][:-1] + ("A" if event["id"][-1] != "A" else "B")),
        ("webhook-timestamp", str(int(request.headers["webhook-timestamp"]) + 1)),
        ("webhook-signature", signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]),
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(endpoint["secret"]).verify(request.body, request.headers | {name: value})
    for index in range(len(request.body)):  # every byte
        body = bytearray(request.body)
        body[index] ^= 0x01
        with pytest.raises(WebhookVerificationError):
            Webhook(endpoint["secret"]).verify(bytes(body), request.headers)

    delivery = await _only_delivery(hooks, shop, endpoint["id"])
    published = documented_properties(router)
    check_resource(WebhookDelivery, delivery, published["WebhookDelivery"])
    assert delivery["status"] == "succeeded"
    assert delivery["event"] == event["id"]
    assert (delivery["attempts"], delivery["last_status_code"], delivery["next_attempt"]) == (1, 200, None)
    attempts = await _get(hooks, shop, f"/v1/webhook_endpoints/{endpoint['id']}/deliveries/{delivery['id']}/attempts")
    (attempt,) = attempts["data"]
    check_resource(WebhookDeliveryAttempt, attempt, published["WebhookDeliveryAttempt"])
    assert (attempt["status_code"], attempt["succeeded"], attempt["response_body"]) == (200, True, "ok")


async def test_only_subscribed_enabled_endpoints_of_the_merchant_get_the_event(
    hooks: Hooks, shop: Credentials, receiver: Receiver
) -> None:
    await _endpoint(hooks, shop, f"{receiver.url}/all", enabled_events=["*"])
    await _endpoint(hooks, shop, f"{receiver.url}/exact", enabled_events=["customer.created"])
    await _endpoint(hooks, shop, f"{receiver.url}/payments", enabled_events=["payment_intent.*"])
    disabled = await _endpoint(hooks, shop, f"{receiver.url}/disabled")
    async with hooks.platform.client(shop) as client:
        assert (await client.post(f"/v1/webhook_endpoints/{disabled['id']}", json={"disabled": True})).status_code == 200
    other = await hooks.platform.merchant()
    await _endpoint(hooks, other, f"{receiver.url}/other")

    await hooks.platform.create_customer(shop, name="Grace")
    await hooks.deliver()
    assert sorted(request.path for request in receiver.received) == ["/all", "/exact"]


async def test_failures_follow_the_schedule_to_a_dead_letter_and_an_event(
    hooks: Hooks, shop: Credentials, receiver: Receiver
) -> None:
    receiver.default = Reply(status=500, body=b"x" * (RESPONSE_BODY_KEPT_BYTES * 2))
    endpoint = await _endpoint(hooks, shop, f"{receiver.url}/down")
    watcher = await _endpoint(hooks, shop, f"{receiver.url}/watcher", enabled_events=["webhook_endpoint.*"])
    await hooks.platform.create_customer(shop)
    await hooks.deliver()
    elapsed = timedelta(0)
    for attempt, delay in enumerate(RETRY_DELAYS, start=1):
        delivery = await _only_delivery(hooks, shop, endpoint["id"])
        assert (delivery["status"], delivery["attempts"]) == ("pending", attempt)
        assert delivery["next_attempt"] - delivery["last_attempt"] in (int(delay.total_seconds()), int(delay.total_seconds()) + 1)
        assert delivery["last_response_body"] == "x" * RESPONSE_BODY_KEPT_BYTES
        with hooks.shifted(elapsed + delay - timedelta(seconds=2)):
            await hooks.deliver()  # not due yet
        assert len(receiver.at("/down")) == attempt
        elapsed += delay
        with hooks.shifted(elapsed + timedelta(seconds=1)):
            await hooks.deliver()
    assert len(receiver.at("/down")) == ATTEMPTS_MAX

    delivery = await _only_delivery(hooks, shop, endpoint["id"])
    assert (delivery["status"], delivery["attempts"], delivery["next_attempt"]) == ("failed", ATTEMPTS_MAX, None)
    assert delivery["last_status_code"] == 500
    (exhausted,) = await _events_of_type(hooks, shop, "webhook_endpoint.delivery_exhausted")
    assert exhausted["data"]["object"]["id"] == delivery["id"]
    # Told to the other endpoint, never to the one it is about.
    with hooks.shifted(elapsed + timedelta(seconds=2)):
        await hooks.deliver()
    assert [orjson.loads(request.body)["id"] for request in receiver.at("/watcher")] == [exhausted["id"]]
    assert len(receiver.at("/down")) == ATTEMPTS_MAX
    assert (await _get(hooks, shop, f"/v1/webhook_endpoints/{watcher['id']}"))["status"] == "enabled"


async def test_410_gone_disables_the_endpoint_with_an_event_and_an_audit_row(
    hooks: Hooks, shop: Credentials, receiver: Receiver
) -> None:
    receiver.default = Reply(status=410)
    endpoint = await _endpoint(hooks, shop, f"{receiver.url}/gone")
    await hooks.platform.create_customer(shop)
    await hooks.deliver()

    retrieved = await _get(hooks, shop, f"/v1/webhook_endpoints/{endpoint['id']}")
    assert retrieved["status"] == "disabled"
    assert "410" in retrieved["disabled_reason"]
    delivery = await _only_delivery(hooks, shop, endpoint["id"])
    assert (delivery["status"], delivery["last_status_code"]) == ("failed", 410)
    (disabled,) = await _events_of_type(hooks, shop, "webhook_endpoint.disabled")
    assert disabled["data"]["object"]["id"] == endpoint["id"]
    async with hooks.platform.owner.transaction() as connection:
        actors = await connection.fetch(
            "SELECT actor FROM audit_events WHERE resource_id = $1 AND action_type = 'webhook_endpoint.disable'", endpoint["id"]
        )
    assert [row["actor"] for row in actors] == ["webhooks.sender"]

    # No more deliveries while disabled; enabled again, it gets what waited.
    await hooks.platform.create_customer(shop)
    await hooks.deliver()
    assert len(receiver.at("/gone")) == 1
    receiver.default = Reply()
    async with hooks.platform.client(shop) as client:
        enabled = await client.post(f"/v1/webhook_endpoints/{endpoint['id']}", json={"disabled": False})
    assert (enabled.json()["status"], enabled.json()["disabled_reason"]) == ("enabled", None)
    await hooks.platform.create_customer(shop)
    await hooks.deliver()
    assert len(receiver.at("/gone")) == 2


@pytest.mark.parametrize(
    ("status", "retry_after", "expected_delay_s"),
    [
        (429, "120", 120),
        (503, "120", 120),
        (429, str(int(RETRY_AFTER_MAX.total_seconds()) * 3), int(RETRY_AFTER_MAX.total_seconds())),
        (500, "120", int(RETRY_DELAYS[0].total_seconds())),
        (301, None, int(RETRY_DELAYS[0].total_seconds())),
    ],
)
async def test_retry_after_is_honoured_up_to_a_cap_and_redirects_are_failures(
    hooks: Hooks, shop: Credentials, receiver: Receiver, *, status: int, retry_after: str | None, expected_delay_s: int
) -> None:
    headers = (("retry-after", retry_after),) if retry_after else (("location", f"{receiver.url}/elsewhere"),)
    receiver.default = Reply(status=status, headers=headers)
    endpoint = await _endpoint(hooks, shop, f"{receiver.url}/busy")
    await hooks.platform.create_customer(shop)
    await hooks.deliver()
    delivery = await _only_delivery(hooks, shop, endpoint["id"])
    assert (delivery["status"], delivery["last_status_code"]) == ("pending", status)
    assert delivery["next_attempt"] - delivery["last_attempt"] in (expected_delay_s, expected_delay_s + 1)
    assert receiver.at("/elsewhere") == []


async def test_a_slow_endpoint_times_out_and_the_attempt_says_so(hooks: Hooks, shop: Credentials, receiver: Receiver) -> None:
    receiver.default = Reply(delay_s=2.0)
    endpoint = await _endpoint(hooks, shop, f"{receiver.url}/slow")
    await hooks.platform.create_customer(shop)
    await hooks.deliver(dataclasses.replace(EXACT, timeout_s=0.3))
    delivery = await _only_delivery(hooks, shop, endpoint["id"])
    assert delivery["status"] == "pending"
    assert delivery["last_status_code"] is None
    assert delivery["last_error"].startswith("timeout")


async def test_five_days_of_failures_disable_the_endpoint(hooks: Hooks, shop: Credentials, receiver: Receiver) -> None:
    receiver.default = Reply(status=500)
    endpoint = await _endpoint(hooks, shop, f"{receiver.url}/failing")
    await hooks.platform.create_customer(shop)
    await hooks.deliver()
    with hooks.shifted(timedelta(days=4)):
        await hooks.platform.create_customer(shop)
        await hooks.deliver()
    assert (await _get(hooks, shop, f"/v1/webhook_endpoints/{endpoint['id']}"))["status"] == "enabled"
    with hooks.shifted(timedelta(days=5, minutes=1)):
        await hooks.platform.create_customer(shop)
        await hooks.deliver()
    retrieved = await _get(hooks, shop, f"/v1/webhook_endpoints/{endpoint['id']}")
    assert retrieved["status"] == "disabled"
    assert "5 days" in retrieved["disabled_reason"]


async def test_a_success_ends_the_failing_spell(hooks: Hooks, shop: Credentials, receiver: Receiver) -> None:
    receiver.scripts["/flaky"] = [Reply(status=500)]
    endpoint = await _endpoint(hooks, shop, f"{receiver.url}/flaky")
    await hooks.platform.create_customer(shop)
    await hooks.deliver()
    with hooks.shifted(timedelta(days=4)):
        await hooks.deliver()  # the retry succeeds
    with hooks.shifted(timedelta(days=6)):
        receiver.default = Reply(status=500)
        await hooks.platform.create_customer(shop)
        await hooks.deliver()
    assert (await _get(hooks, shop, f"/v1/webhook_endpoints/{endpoint['id']}"))["status"] == "enabled"


async def test_a_manual_retry_sends_the_same_id_with_a_fresh_signature(
    hooks: Hooks, shop: Credentials, receiver: Receiver
) -> None:
    endpoint = await _endpoint(hooks, shop, f"{receiver.url}/again")
    await hooks.platform.create_customer(shop)
    await hooks.deliver()
    delivery = await _only_delivery(hooks, shop, endpoint["id"])
    with hooks.shifted(timedelta(seconds=3)):
        async with hooks.platform.client(shop) as client:
            retried = await client.post(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries/{delivery['id']}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "pending"
        await hooks.deliver()
    first, second = receiver.at("/again")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    assert first.body == second.body
    retrieved = await _get(hooks, shop, f"/v1/webhook_endpoints/{endpoint['id']}/deliveries/{delivery['id']}")
    assert (retrieved["status"], retrieved["attempts"]) == ("succeeded", 2)

    async with hooks.platform.client(shop) as client:
        missing = await client.post(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries/whd_{'0' * 26}/retry")
    assert missing.status_code == 404
    assert missing.json()["error"]["param"] == "delivery"


async def test_recover_requeues_dead_letters_since_a_moment_once_a_minute(
    hooks: Hooks, shop: Credentials, receiver: Receiver
) -> None:
    receiver.default = Reply(status=500)
    endpoint = await _endpoint(hooks, shop, f"{receiver.url}/recovering")
    for _ in range(3):
        await hooks.platform.create_customer(shop)
    await hooks.relay()
    async with hooks.platform.owner.transaction() as connection:
        await connection.execute(
            "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, attempts = $2 WHERE endpoint_id = $1",
            endpoint["id"],
            ATTEMPTS_MAX,
        )
    since = int(time.time()) - 60
    path = f"/v1/webhook_endpoints/{endpoint['id']}/recover"
    async with hooks.platform.client(shop) as client:
        recovered = await client.post(path, json={"since": since})
        assert recovered.status_code == 200, recovered.text
        assert recovered.json() == {
            "object": "webhook_endpoint_recovery",
            "endpoint": endpoint["id"],
            "since": since,
            "requeued": 3,
        }
        again = await client.post(path, json={"since": since})
        assert again.status_code == 429
        assert again.json()["error"]["code"] == "webhook_recover_rate_limited"
        too_old = await client.post(path, json={"since": since - 15 * 86_400})
        assert too_old.status_code == 400
        assert (too_old.json()["error"]["code"], too_old.json()["error"]["param"]) == ("webhook_recover_window", "since")
    assert {delivery["status"] for delivery in await _deliveries(hooks, shop, endpoint["id"])} == {"pending"}
    receiver.default = Reply()
    await hooks.deliver()
    assert {delivery["status"] for delivery in await _deliveries(hooks, shop, endpoint["id"], status="succeeded")} == {
        "succeeded"
    }
    assert await _deliveries(hooks, shop, endpoint["id"], status="pending") == []


async def test_ordered_endpoints_get_an_objects_events_one_after_another(
    hooks: Hooks, shop: Credentials, receiver: Receiver
) -> None:
    receiver.scripts["/ordered"] = [Reply(status=500)]
    endpoint = await _endpoint(hooks, shop, f"{receiver.url}/ordered", ordered=True)
    await _endpoint(hooks, shop, f"{receiver.url}/unordered")
    customer = await hooks.platform.create_customer(shop, name="first")
    async with hooks.platform.client(shop) as client:
        for name in ("second", "third"):
            assert (await client.post(f"/v1/customers/{customer['id']}", json={"name": name})).status_code == 200
    other = await hooks.platform.create_customer(shop, name="other")

    await hooks.deliver()
    # The first delivery about `customer` failed: its later ones wait; `other` does not.
    assert [orjson.loads(request.body)["data"]["object"]["id"] for request in receiver.at("/ordered")] == [
        customer["id"],
        other["id"],
    ]
    assert len(receiver.at("/unordered")) == 4
    with hooks.shifted(timedelta(seconds=6)):
        for _ in range(3):
            await hooks.deliver()
    names = [orjson.loads(request.body)["data"]["object"]["name"] for request in receiver.at("/ordered")]
    assert names == ["first", "other", "first", "second", "third"]
    statuses = {delivery["status"] for delivery in await _deliveries(hooks, shop, endpoint["id"])}
    assert statuses == {"succeeded"}


def _verified(scheme: str, secret: str, request: Received) -> dict[str, Any]:
    """The event `request` delivered, verified with `secret` by the official library of `scheme`
    (which raises if it does not verify); a delivery carries its scheme's headers only."""
    if scheme == "stripe":
        assert not [name for name in request.headers if name.startswith("webhook-")], request.headers
        event: dict[str, Any] = stripe.Webhook.construct_event(
            request.body, request.headers["stripe-signature"], secret
        ).to_dict()
        return event
    assert "stripe-signature" not in request.headers, request.headers
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


def _signatures(scheme: str, request: Received) -> list[str]:
    if scheme == "stripe":
        return [part for part in request.headers["stripe-signature"].split(",") if part.startswith("v1=")]
    return request.headers["webhook-signature"].split(" ")


async def test_a_stripe_scheme_delivery_is_verified_by_stripes_library(
    hooks: Hooks, shop: Credentials, receiver: Receiver
) -> None:
    receiver.scripts["/stripe"] = [Reply(status=500)]
    endpoint = await _endpoint(hooks, shop, f"{receiver.url}/stripe", signature_scheme="stripe")
    assert endpoint["signature_scheme"] == "stripe"
    await hooks.platform.create_customer(shop, name="Ada")
    await hooks.deliver()
    with hooks.shifted(timedelta(seconds=6)):
        await hooks.deliver()  # the retry after the 500

    first, retried = receiver.at("/stripe")
    (event,) = await _events_of_type(hooks, shop, "customer.created")
    assert _verified("stripe", endpoint["secret"], first) == _verified("stripe", endpoint["secret"], retried) == event
    assert first.body == retried.body
    first_t, retried_t = (
        int(request.headers["stripe-signature"].split(",")[0].removeprefix("t=")) for request in (first, retried)
    )
    assert retried_t >= first_t + 6, "each attempt is signed at its own time"

    header = first.headers["stripe-signature"]
    signature = header.rpartition("v1=")[2]
    forged = header.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(first.body, forged, endpoint["secret"])
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(first.body, header, new_secret())  # another endpoint's
    assert first.body.isascii()  # so that each flip below leaves text the library can decode
    for index in range(len(first.body)):  # every byte
        body = bytearray(first.body)
        body[index] ^= 0x01
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(bytes(body), header, endpoint["secret"])


@pytest.mark.parametrize("scheme", ["standard_webhooks", "stripe"])
async def test_a_rotated_secret_signs_beside_the_new_one_for_a_day(
    hooks: Hooks, shop: Credentials, receiver: Receiver, scheme: str
) -> None:
    endpoint = await _endpoint(hooks, shop, f"{receiver.url}/rotated", signature_scheme=scheme)
    async with hooks.platform.client(shop) as client:
        rotated = (await client.post(f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret")).json()
    await hooks.platform.create_customer(shop)
    await hooks.deliver()
    (request,) = receiver.at("/rotated")
    assert len(_signatures(scheme, request)) == 2
    for secret in (endpoint["secret"], rotated["secret"]):
        _verified(scheme, secret, request)


async def test_an_endpoint_switched_to_another_scheme_signs_its_next_delivery_so(
    hooks: Hooks, shop: Credentials, receiver: Receiver
) -> None:
    endpoint = await _endpoint(hooks, shop, f"{receiver.url}/switched")
    assert endpoint["signature_scheme"] == "standard_webhooks", "the default"
    await hooks.platform.create_customer(shop)
    await hooks.deliver()
    _verified("standard_webhooks", endpoint["secret"], receiver.at("/switched")[-1])
    for scheme in ("stripe", "standard_webhooks"):
        async with hooks.platform.client(shop) as client:
            updated = await client.post(f"/v1/webhook_endpoints/{endpoint['id']}", json={"signature_scheme": scheme})
        assert updated.json()["signature_scheme"] == scheme, updated.text
        customer = await hooks.platform.create_customer(shop)
        await hooks.deliver()
        assert _verified(scheme, endpoint["secret"], receiver.at("/switched")[-1])["data"]["object"]["id"] == customer["id"]
    assert len(receiver.at("/switched")) == 3


# What a name registered as public may resolve to at delivery: every address the guard refuses
# in live mode, and the first and last of each blocked network.
REBOUND = list(
    dict.fromkeys(
        [address for address, allowed_live, _ in ADDRESSES if not allowed_live]
        + [str(address) for network, _ in BLOCKED_NETWORKS for address in (network[0], network[-1])]
    )
)


async def test_a_name_rebound_to_a_refused_address_is_refused_at_delivery(hooks: Hooks, receiver: Receiver) -> None:
    """Registered while it looked public, the name answers one refused address after another at
    delivery: every attempt is refused at connection, nothing is sent anywhere."""
    assert len(REBOUND) >= 40
    live = await hooks.platform.merchant(livemode=True)
    endpoint = await _endpoint(hooks, live, "https://hooks.rebinding.example/bastion")
    for _ in REBOUND:
        await hooks.platform.create_customer(live)
    answers = iter(REBOUND)

    async def rebinding(host: str, port: int) -> list[str]:
        return [next(answers)]

    def connect(policy: DestinationPolicy, connections: int) -> aiohttp.ClientSession:
        return guarded_session(policy, timeout_s=2.0, resolver=rebinding, connections_max=connections)

    await hooks.relay()
    sender = hooks.sender(connect=connect)
    try:
        while await sender.send_due():
            continue
    finally:
        await sender.close()
    deliveries = await _deliveries(hooks, live, endpoint["id"])
    assert len(deliveries) == len(REBOUND)
    assert {(delivery["status"], delivery["attempts"]) for delivery in deliveries} == {("pending", 1)}
    refused = {delivery["last_error"].rsplit("(", 1)[1].split(")")[0] for delivery in deliveries}
    assert all("resolves to" in delivery["last_error"] for delivery in deliveries), deliveries
    assert refused == {str(ipaddress.ip_address(address)) for address in REBOUND}
    assert receiver.received == []


async def test_a_slow_endpoint_holds_only_its_own_slots(hooks: Hooks, shop: Credentials, receiver: Receiver) -> None:
    """The slow endpoint's two slots stay busy for 5 s; the fast endpoint's ten deliveries all
    pass meanwhile, and the slow one gets no third before an answer frees a slot."""
    slow_s = 5.0
    receiver.scripts["/slow"] = [Reply(delay_s=slow_s) for _ in range(10)]
    await _endpoint(hooks, shop, f"{receiver.url}/slow")
    await _endpoint(hooks, shop, f"{receiver.url}/fast")
    for _ in range(10):
        await hooks.platform.create_customer(shop)
    await hooks.relay()
    stop = asyncio.Event()
    sender = hooks.sender(SenderLimits(jitter_fraction=0.0, in_flight_max=8, per_endpoint_max=2, poll_interval_s=0.05))
    running = asyncio.create_task(sender.run(hooks.platform.database.owner_url, stop))
    try:
        fast = await receiver.wait_for(10, path="/fast", timeout_s=slow_s * 2)
        slow = receiver.at("/slow")
        assert len(slow) == 2, "the slow endpoint's slots: two, until one answers"
        assert fast[-1].at - slow[0].at < slow_s, "the fast endpoint waited on the slow one"
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)


async def test_a_lapsed_claim_is_delivered_again(hooks: Hooks, shop: Credentials, receiver: Receiver) -> None:
    endpoint = await _endpoint(hooks, shop, f"{receiver.url}/lapsed")
    await hooks.platform.create_customer(shop)
    await hooks.relay()
    crashed = hooks.sender()
    # Room for every due delivery, other tests' leftovers included.
    claimed = await crashed._claim(SenderLimits().in_flight_max)
    await crashed.close()
    assert endpoint["id"] in {row["endpoint_id"] for row in claimed}
    await hooks.deliver()
    assert receiver.at("/lapsed") == []
    with hooks.shifted(timedelta(seconds=31)):
        await hooks.deliver()
    assert len(receiver.at("/lapsed")) == 1
    assert (await _only_delivery(hooks, shop, endpoint["id"]))["status"] == "succeeded"


async def test_unknown_deliveries_and_endpoints_are_404_naming_the_parameter(hooks: Hooks, shop: Credentials) -> None:
    other = await hooks.platform.merchant()
    endpoint = await _endpoint(hooks, other, "https://hooks.example.com/x")
    async with hooks.platform.client(shop) as client:
        for path, param in (
            (f"/v1/webhook_endpoints/{endpoint['id']}/deliveries", "id"),
            (f"/v1/webhook_endpoints/we_{'0' * 26}/deliveries/whd_{'0' * 26}", "id"),
        ):
            response = await client.get(path)
            assert response.status_code == 404, response.text
            assert response.json()["error"]["param"] == param
        bad_status = await client.get(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries", params={"status": "lost"})
        assert bad_status.status_code == 400
        assert bad_status.json()["error"]["param"] == "status"


async def test_no_card_number_reaches_a_delivery(hooks: Hooks, shop: Credentials, receiver: Receiver) -> None:
    """A card number pushed through every free-text field of the API is refused there, so no
    event, delivery or attempt can carry one; what is delivered is scanned to be sure."""
    await _endpoint(hooks, shop, f"{receiver.url}/cards", enabled_events=["*"])
    async with hooks.platform.client(shop) as client:
        for field in FREE_TEXT:
            url = await _path(hooks.platform, shop, field.path)
            for text in field.forms:
                answer = await client.request(field.method, url, json=field.body(text))
                assert answer.status_code == 400, (field, answer.text)
    assert await hooks.deliver() > 0
    received = await receiver.wait_for(1, path="/cards")
    async with hooks.platform.owner.transaction() as connection:
        stored = await connection.fetch(
            "SELECT d.*, a.response_body AS attempt_body FROM webhook_deliveries d "
            "JOIN webhook_attempts a ON a.delivery_id = d.id WHERE d.merchant_id = $1",
            shop.merchant_id,
        )
    assert stored
    for text in [request.body.decode() for request in received] + [str(dict(row)) for row in stored]:
        assert not CARD_NUMBER.search(text.replace(" ", "").replace("-", "")), text
