"""Events over the real app and database: what the customers API emits, GET /v1/events,
and the outbox relay delivering to subscribers with exactly one effect each."""

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bastion import bootstrap
from bastion.events import load_subscribers, publish_pending, run_relay
from bastion.events.relay import DeliveryFailures, RetryPolicy
from bastion.kernel.errors import ConfigurationError
from bastion.kernel.ids import new_id
from bastion.platform.db import Connection, Database
from bastion.platform.settings import Settings
from tests.support import postgres
from tests.support.platform import Credentials, Platform
from tests.support.subscribers import EffectRecorder, create_effects_table, drain, effect_counts

DELIVERY_TIMEOUT_S = 10.0


async def _event_ids(platform: Platform, merchant: Credentials) -> list[str]:
    async with platform.client(merchant) as client:
        listed = (await client.get("/v1/events", params={"limit": 100})).json()
    return [event["id"] for event in listed["data"]]


async def test_customer_lifecycle_emits_events(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        created = await client.post("/v1/customers", json={"name": "Jenny", "email": "jenny@example.com"})
        customer_id = created.json()["id"]
        updated = await client.post(f"/v1/customers/{customer_id}", json={"name": "Jenny R.", "email": "jenny@example.com"})
        deleted = await client.delete(f"/v1/customers/{customer_id}")
        listed = await client.get("/v1/events")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["object"] == "list"
    assert body["url"] == "/v1/events"
    assert body["has_more"] is False
    deleted_event, updated_event, created_event = body["data"]
    assert [event["type"] for event in body["data"]] == ["customer.deleted", "customer.updated", "customer.created"]
    assert created_event["data"] == {"object": created.json()}
    # Only what changed: the email was sent again with the same value.
    assert updated_event["data"] == {"object": updated.json(), "previous_attributes": {"name": "Jenny"}}
    assert deleted_event["data"] == {"object": updated.json()}
    for event, response in ((created_event, created), (updated_event, updated), (deleted_event, deleted)):
        assert event["request"] == {"id": response.headers["Request-Id"]}
        assert event["id"].startswith("evt_")
        assert event["object"] == "event"
        assert event["livemode"] is False
        assert isinstance(event["created"], int)


async def test_list_pages_and_filters(platform: Platform, merchant: Credentials) -> None:
    customers = [await platform.create_customer(merchant, name=f"c{i}") for i in range(4)]
    async with platform.client(merchant) as client:
        await client.post(f"/v1/customers/{customers[0]['id']}", json={"name": "renamed"})
        newest_first = [event["id"] for event in (await client.get("/v1/events")).json()["data"]]
        assert len(newest_first) == 5

        first = (await client.get("/v1/events", params={"limit": 2})).json()
        assert [event["id"] for event in first["data"]] == newest_first[:2]
        assert first["has_more"] is True
        second = (await client.get("/v1/events", params={"limit": 2, "starting_after": newest_first[1]})).json()
        assert [event["id"] for event in second["data"]] == newest_first[2:4]
        assert second["has_more"] is True
        last = (await client.get("/v1/events", params={"limit": 2, "starting_after": newest_first[3]})).json()
        assert [event["id"] for event in last["data"]] == newest_first[4:]
        assert last["has_more"] is False
        back = (await client.get("/v1/events", params={"limit": 2, "ending_before": newest_first[4]})).json()
        assert [event["id"] for event in back["data"]] == newest_first[2:4]
        assert back["has_more"] is True

        created = (await client.get("/v1/events", params={"type": "customer.created"})).json()
        assert [event["id"] for event in created["data"]] == newest_first[1:]
        updated = (await client.get("/v1/events", params={"type": "customer.updated"})).json()
        assert [event["id"] for event in updated["data"]] == newest_first[:1]
        assert (await client.get("/v1/events", params={"type": "customer.deleted"})).json()["data"] == []


async def test_bad_list_parameters_are_named(platform: Platform, merchant: Credentials) -> None:
    other = await platform.merchant()
    await platform.create_customer(other, name="elsewhere")
    (foreign_event,) = await _event_ids(platform, other)
    async with platform.client(merchant) as client:
        for params, status, param in (
            ({"type": "customer.exploded"}, 400, "type"),
            ({"limit": 0}, 400, "limit"),
            ({"limit": 101}, 400, "limit"),
            ({"starting_after": "evt_nope"}, 404, "starting_after"),
            ({"starting_after": "cus_01M84JBVTJ99ERYXDBX1KDYTHZ"}, 404, "starting_after"),
            ({"ending_before": new_id("evt")}, 404, "ending_before"),
            # Another merchant's event exists, but not for this merchant.
            ({"ending_before": foreign_event}, 404, "ending_before"),
            ({"typ": "customer.created"}, 400, "typ"),
        ):
            response = await client.get("/v1/events", params=params)
            assert response.status_code == status, (params, response.text)
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert error["param"] == param, params


async def test_retrieve(platform: Platform, merchant: Credentials) -> None:
    await platform.create_customer(merchant, name="retrievable")
    async with platform.client(merchant) as client:
        (listed,) = (await client.get("/v1/events")).json()["data"]
        fetched = await client.get(f"/v1/events/{listed['id']}")
        assert fetched.status_code == 200, fetched.text
        assert fetched.json() == listed
        for missing in (new_id("evt"), "nope", "cus_01M84JBVTJ99ERYXDBX1KDYTHZ"):
            response = await client.get(f"/v1/events/{missing}")
            assert response.status_code == 404, missing
            assert response.json()["error"]["code"] == "resource_missing"


async def test_other_merchants_and_modes_see_nothing(platform: Platform, merchant: Credentials) -> None:
    await platform.create_customer(merchant, name="private")
    (event_id,) = await _event_ids(platform, merchant)
    other = await platform.merchant()
    live = await platform.api_key(merchant.merchant_id, livemode=True)
    for outsider in (other, live):
        async with platform.client(outsider) as client:
            assert (await client.get(f"/v1/events/{event_id}")).status_code == 404
            listed = await client.get("/v1/events")
            assert listed.status_code == 200
            assert listed.json()["data"] == []


async def test_events_read_scope_is_required(platform: Platform, merchant: Credentials) -> None:
    await platform.create_customer(merchant, name="scoped")
    (event_id,) = await _event_ids(platform, merchant)
    customers_only = await platform.api_key(merchant.merchant_id, scopes=["customers:read", "customers:write"])
    events_only = await platform.api_key(merchant.merchant_id, scopes=["events:read"])
    async with platform.client(customers_only) as client:
        for path in ("/v1/events", f"/v1/events/{event_id}"):
            denied = await client.get(path)
            assert denied.status_code == 403, path
            assert denied.json()["error"]["type"] == "permission_error"
    async with platform.client(events_only) as client:
        assert (await client.get("/v1/events")).status_code == 200
        assert (await client.get(f"/v1/events/{event_id}")).status_code == 200


# The relay, in process, on the session database as the worker role.


@dataclass
class FailingRecorder:
    """Applies its effect, then fails for the events in `failing_ids`: the effect must roll back."""

    name: str
    failing_ids: set[str]
    calls: list[str] = field(default_factory=list)

    async def handle(self, connection: Connection, event: dict[str, Any]) -> None:
        self.calls.append(event["id"])
        await EffectRecorder(self.name).handle(connection, event)
        if event["id"] in self.failing_ids:
            raise RuntimeError("subscriber failed on purpose")


@pytest.fixture(scope="module")
async def worker_database(
    platform: Platform, test_database: postgres.TestDatabase, settings: Settings
) -> AsyncIterator[Database]:
    async with platform.owner.transaction() as connection:
        await create_effects_table(connection, test_database.roles.worker)
    database = bootstrap.role_database(settings, test_database.owner_url, test_database.roles.worker)
    yield database
    await database.dispose()


async def _published(platform: Platform, event_id: str) -> bool:
    async with platform.owner.transaction() as connection:
        (row,) = await connection.fetch("SELECT published_at FROM events WHERE id = $1", event_id)
    return row["published_at"] is not None


async def _effects(platform: Platform, subscriber: str) -> dict[str, int]:
    async with platform.owner.transaction() as connection:
        return await effect_counts(connection, subscriber)


async def test_redelivered_batch_has_no_second_effect(
    platform: Platform, merchant: Credentials, worker_database: Database
) -> None:
    recorder = EffectRecorder(f"recorder_{new_id('evt')}")
    await drain(worker_database, [])
    await platform.create_customer(merchant, name="once")
    (event_id,) = await _event_ids(platform, merchant)
    assert await publish_pending(worker_database, [recorder]) == 1
    assert await _published(platform, event_id)
    # A crash after the subscriber committed but before the batch was marked published.
    async with platform.owner.transaction() as connection:
        await connection.execute("UPDATE events SET published_at = NULL WHERE id = $1", event_id)
    assert await publish_pending(worker_database, [recorder]) == 1
    assert await _published(platform, event_id)
    assert await _effects(platform, recorder.name) == {event_id: 1}


async def test_failed_subscriber_is_retried_without_repeating_the_others(
    platform: Platform, merchant: Credentials, worker_database: Database
) -> None:
    await drain(worker_database, [])
    await platform.create_customer(merchant, name="flaky")
    (event_id,) = await _event_ids(platform, merchant)
    recorder = EffectRecorder(f"recorder_{new_id('evt')}")
    flaky = FailingRecorder(f"flaky_{new_id('evt')}", failing_ids={event_id})
    assert await publish_pending(worker_database, [recorder, flaky]) == 0
    assert not await _published(platform, event_id)
    assert await _effects(platform, recorder.name) == {event_id: 1}
    assert await _effects(platform, flaky.name) == {}, "the failed subscriber's effect must roll back with its inbox row"

    flaky.failing_ids.clear()
    assert await publish_pending(worker_database, [recorder, flaky]) == 1
    assert await _published(platform, event_id)
    assert await _effects(platform, recorder.name) == {event_id: 1}
    assert await _effects(platform, flaky.name) == {event_id: 1}
    assert flaky.calls == [event_id, event_id]


@dataclass
class BatchRecorder:
    """Takes batches; fails any batch holding an event of `failing_ids`, after its effects."""

    name: str
    failing_ids: set[str]
    batches: list[list[str]] = field(default_factory=list)

    async def handle_batch(self, connection: Connection, events: list[dict[str, Any]]) -> None:
        self.batches.append([event["id"] for event in events])
        for event in events:
            await EffectRecorder(self.name).handle(connection, event)
        if self.failing_ids & {event["id"] for event in events}:
            raise RuntimeError("subscriber failed on purpose")


async def test_a_batch_subscriber_takes_the_batch_at_once_and_a_failure_holds_back_its_event_alone(
    platform: Platform, merchant: Credentials, worker_database: Database
) -> None:
    await drain(worker_database, [])
    for index in range(3):
        await platform.create_customer(merchant, name=f"batch {index}")
    event_ids = sorted(await _event_ids(platform, merchant))
    whole = BatchRecorder(f"whole_{new_id('evt')}", failing_ids=set())
    poisoned = BatchRecorder(f"poisoned_{new_id('evt')}", failing_ids={event_ids[1]})
    assert await publish_pending(worker_database, [whole, poisoned]) == 2
    assert whole.batches == [event_ids]
    # The batch failed, then each event went alone: only the poisoned one failed again.
    assert poisoned.batches == [event_ids, [event_ids[0]], [event_ids[1]], [event_ids[2]]]
    assert await _effects(platform, poisoned.name) == {event_ids[0]: 1, event_ids[2]: 1}
    assert await _effects(platform, whole.name) == dict.fromkeys(event_ids, 1)
    assert [await _published(platform, event_id) for event_id in event_ids] == [True, False, True]

    poisoned.failing_ids.clear()
    assert await publish_pending(worker_database, [whole, poisoned]) == 1
    assert poisoned.batches[-1] == [event_ids[1]]
    assert await _effects(platform, poisoned.name) == dict.fromkeys(event_ids, 1)
    assert await _effects(platform, whole.name) == dict.fromkeys(event_ids, 1)


async def test_failing_event_backs_off_then_parks_but_is_never_lost(
    platform: Platform, merchant: Credentials, worker_database: Database
) -> None:
    await drain(worker_database, [])
    await platform.create_customer(merchant, name="poison")
    (event_id,) = await _event_ids(platform, merchant)
    failing = FailingRecorder(f"failing_{new_id('evt')}", failing_ids={event_id})
    delay_first_s = 0.3
    failures = DeliveryFailures(RetryPolicy(attempts_max=2, delay_first_s=delay_first_s))

    assert await publish_pending(worker_database, [failing], failures=failures) == 0
    assert await publish_pending(worker_database, [failing], failures=failures) == 0
    assert failing.calls == [event_id], "within the backoff delay the event is held back"
    await asyncio.sleep(delay_first_s + 0.1)
    assert await publish_pending(worker_database, [failing], failures=failures) == 0
    assert failing.calls == [event_id, event_id]
    await asyncio.sleep(delay_first_s * 2 + 0.1)
    assert await publish_pending(worker_database, [failing], failures=failures) == 0
    assert failing.calls == [event_id, event_id], "after attempts_max failures the event is parked"
    assert not await _published(platform, event_id)

    # A restart forgets the parking; the subscriber works again.
    failing.failing_ids.clear()
    assert await publish_pending(worker_database, [failing], failures=DeliveryFailures()) == 1
    assert await _published(platform, event_id)
    assert await _effects(platform, failing.name) == {event_id: 1}


async def test_relay_wakes_on_notify(
    platform: Platform, merchant: Credentials, worker_database: Database, test_database: postgres.TestDatabase, settings: Settings
) -> None:
    await drain(worker_database, [])
    recorder = EffectRecorder(f"recorder_{new_id('evt')}")
    stop = asyncio.Event()
    dsn = bootstrap.role_dsn(settings, test_database.owner_url, test_database.roles.worker)
    # Without NOTIFY the relay runs at start, once when its listener connects, then only after 300 s:
    # three customers created one after another cannot all be delivered in time.
    relay = asyncio.create_task(run_relay(worker_database, dsn, [recorder], stop, poll_interval_s=300.0))
    try:
        for index in range(3):
            await platform.create_customer(merchant, name=f"woken {index}")
            deadline = time.monotonic() + DELIVERY_TIMEOUT_S
            while len(await _effects(platform, recorder.name)) <= index:
                assert time.monotonic() < deadline, f"event {index} was not delivered within {DELIVERY_TIMEOUT_S} s"
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(relay, timeout=DELIVERY_TIMEOUT_S)
    event_ids = await _event_ids(platform, merchant)
    assert await _effects(platform, recorder.name) == dict.fromkeys(event_ids, 1)
    assert all([await _published(platform, event_id) for event_id in event_ids])


def test_load_subscribers() -> None:
    (loaded,) = load_subscribers(["tests.support.subscribers:effect_recorder"])
    assert loaded.name == "effect_recorder"
    for paths, fragment in (
        (["tests.support.subscribers"], "module:attribute"),
        (["tests.support.no_such_module:thing"], "No module named"),
        (["tests.support.subscribers:missing"], "has no attribute"),
        (["tests.support.subscribers:create_effects_table"], "async `handle"),
        (["tests.support.subscribers:effect_recorder"] * 2, "unique"),
    ):
        with pytest.raises(ConfigurationError) as raised:
            load_subscribers(paths)
        assert fragment in raised.value.message
        assert "\n" not in raised.value.message


@pytest.mark.processes
def test_worker_refuses_a_bad_subscriber_path(test_database: postgres.TestDatabase) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bastion", "worker"],
        env={**test_database.env(), "BASTION_SUBSCRIBERS": "bastion.nowhere:subscriber"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: BASTION_SUBSCRIBERS: cannot load 'bastion.nowhere:subscriber': No module named 'bastion.nowhere'"
    ]
