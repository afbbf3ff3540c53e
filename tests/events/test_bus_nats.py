"""The outbox on NATS JetStream, against a real server: what the relay publishes (subjects,
headers, body), JetStream dropping a second publish of an event, the streams made idempotently,
a broker that is down, and the consumer runner with its dead-letter queue and CLI."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pytest

from bastion.events import BusUnavailable, Consumer, ConsumerPolicy, Event, list_dead_letters, publish_pending
from bastion.events.bus_nats import NatsPublisher, connect, ensure_streams, headers
from bastion.kernel.ids import new_id
from bastion.platform.db import Connection, Database
from bastion.platform.settings import NatsBus
from tests.support.brokers import nats_env, stream_messages
from tests.support.cli import run_bastion
from tests.support.platform import Credentials, Platform
from tests.support.postgres import TestDatabase, free_port
from tests.support.subscribers import EffectRecorder, create_effects_table, drain, effect_counts

WAIT_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.02
# Quick retries, so that a handler that keeps failing is dead-lettered within a second.
QUICK = ConsumerPolicy(max_deliver=3, ack_wait_s=5.0, retry_delay_first_s=0.05, retry_delay_max_s=0.2, fetch_timeout_s=0.2)


@pytest.fixture(scope="module", autouse=True)
async def effects_table(platform: Platform, test_database: TestDatabase) -> None:
    async with platform.owner.transaction() as connection:
        await create_effects_table(connection, test_database.roles.worker)


async def _events(platform: Platform, merchant: Credentials, count: int) -> list[Event]:
    """`count` events of one new customer (created, then updated), oldest first, as GET /v1/events/{id} answers them."""
    customer = await platform.create_customer(merchant, name="bus 0")
    async with platform.client(merchant) as client:
        for index in range(1, count):
            response = await client.post(f"/v1/customers/{customer['id']}", json={"name": f"bus {index}"})
            assert response.status_code == 200, response.text
        listed = (await client.get("/v1/events", params={"limit": count})).json()["data"]
    events: list[Event] = list(reversed(listed))
    return events


async def _effects(platform: Platform, subscriber: str) -> dict[str, int]:
    async with platform.owner.transaction() as connection:
        return await effect_counts(connection, subscriber)


async def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while not await condition():
        assert time.monotonic() < deadline, f"{what} within {WAIT_TIMEOUT_S} s"
        await asyncio.sleep(POLL_INTERVAL_S)


@dataclass
class Flaky:
    """Fails every event in `failing` with a message naming it, and records the others."""

    name: str
    failing: set[str]
    calls: list[str] = field(default_factory=list)

    async def handle(self, connection: Connection, event: Event) -> None:
        self.calls.append(event["id"])
        if event["id"] in self.failing:
            raise RuntimeError(f"cannot handle {event['id']}\nsecond line")
        await EffectRecorder(self.name).handle(connection, dict(event))


@pytest.fixture
async def publisher(nats_bus: NatsBus) -> AsyncIterator[NatsPublisher]:
    publisher = NatsPublisher(nats_bus)
    yield publisher
    await publisher.close()


@pytest.fixture
async def running(nats_bus: NatsBus, worker_database: Database) -> AsyncIterator[Any]:
    """Starts consumers in the background; stops them all after the test."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    def start(subscriber: Any, policy: ConsumerPolicy = QUICK) -> None:
        tasks.append(asyncio.create_task(Consumer(nats_bus, worker_database, subscriber, policy=policy).run(stop)))

    yield start
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=WAIT_TIMEOUT_S)


async def test_relay_publishes_each_event_with_its_subject_headers_and_body(
    platform: Platform, merchant: Credentials, worker_database: Database, nats_bus: NatsBus, publisher: NatsPublisher
) -> None:
    await drain(worker_database, [])
    events = await _events(platform, merchant, 2)
    assert await publish_pending(worker_database, [publisher]) == 2

    messages = await stream_messages(nats_bus, nats_bus.stream)
    assert [message.subject for message in messages] == [
        f"{nats_bus.subject_prefix}.events.test.customer.created",
        f"{nats_bus.subject_prefix}.events.test.customer.updated",
    ]
    for message, event in zip(messages, events, strict=True):
        assert message.headers is not None
        assert {name: message.headers[name] for name in ("Nats-Msg-Id", "Bastion-Event-Id", "Bastion-Event-Type")} == {
            "Nats-Msg-Id": event["id"],
            "Bastion-Event-Id": event["id"],
            "Bastion-Event-Type": event["type"],
        }
        assert orjson.loads(message.data or b"") == event


async def test_an_event_published_again_is_one_stream_message(
    platform: Platform, merchant: Credentials, worker_database: Database, nats_bus: NatsBus, publisher: NatsPublisher
) -> None:
    await drain(worker_database, [])
    (event,) = await _events(platform, merchant, 1)
    assert await publish_pending(worker_database, [publisher]) == 1
    # A relay that crashed after the PubAck and before its commit: no inbox row, not published.
    async with platform.owner.transaction() as connection:
        await connection.execute("UPDATE events SET published_at = NULL WHERE id = $1", event["id"])
        await connection.execute("DELETE FROM event_inbox WHERE subscriber = $1 AND event_id = $2", publisher.name, event["id"])
    assert await publish_pending(worker_database, [publisher]) == 1
    await publisher.handle_batch(None, [event])  # type: ignore[arg-type]  # the publisher does not use the connection

    messages = await stream_messages(nats_bus, nats_bus.stream)
    assert [message.headers and message.headers["Nats-Msg-Id"] for message in messages] == [event["id"]]


async def test_streams_are_made_idempotently_and_brought_up_to_date(nats_bus: NatsBus) -> None:
    client = await connect(nats_bus, "bastion-tests")
    try:
        js = client.jetstream(timeout=nats_bus.publish_timeout_s)
        await ensure_streams(nats_bus, js)
        await ensure_streams(nats_bus, js)
        wider = replace(nats_bus, duplicate_window_s=nats_bus.duplicate_window_s * 2)
        await ensure_streams(wider, js)
        for stream in (nats_bus.stream, nats_bus.dlq_stream):
            info = await js.stream_info(stream)
            assert info.config.duplicate_window == wider.duplicate_window_s
    finally:
        await client.close()


async def test_a_broker_that_is_down_fails_the_publish_and_the_event_stays_unpublished(
    platform: Platform, merchant: Credentials, worker_database: Database, nats_bus: NatsBus
) -> None:
    await drain(worker_database, [])
    (event,) = await _events(platform, merchant, 1)
    nowhere = NatsPublisher(replace(nats_bus, servers=(f"nats://127.0.0.1:{free_port()}",)))
    started = time.monotonic()
    assert await publish_pending(worker_database, [nowhere]) == 0
    with pytest.raises(BusUnavailable, match="not tried again yet"):
        await nowhere.handle_batch(None, [event])  # type: ignore[arg-type]  # the publisher does not use the connection
    assert time.monotonic() - started < nats_bus.publish_timeout_s * 3
    async with platform.owner.transaction() as connection:
        assert await connection.fetchval("SELECT published_at FROM events WHERE id = $1", event["id"]) is None
    await drain(worker_database, [])


async def test_the_consumer_handles_each_event_once(
    platform: Platform, merchant: Credentials, worker_database: Database, publisher: NatsPublisher, running: Any
) -> None:
    nats_bus = publisher.bus
    await drain(worker_database, [])
    events = await _events(platform, merchant, 3)
    assert await publish_pending(worker_database, [publisher]) == 3
    # The first event again under another message id, as a re-drive sends it: JetStream keeps both.
    client = await connect(nats_bus, "bastion-tests")
    try:
        js = client.jetstream(timeout=nats_bus.publish_timeout_s)
        subject = f"{nats_bus.subject_prefix}.events.test.{events[0]['type']}"
        await js.publish(subject, orjson.dumps(events[0]), headers=headers(events[0], f"{events[0]['id']}.again"))
    finally:
        await client.close()
    recorder = EffectRecorder(f"c_{new_id('evt')}")
    running(recorder)

    async def all_handled() -> bool:
        return len(await _effects(platform, recorder.name)) == len(events)

    await _wait_for(all_handled, "every event handled")
    await asyncio.sleep(QUICK.fetch_timeout_s * 2)  # time for the copy to arrive, if it were to count
    assert await _effects(platform, recorder.name) == {event["id"]: 1 for event in events}


async def test_a_handler_that_keeps_failing_is_dead_lettered_then_listed_and_redriven(
    platform: Platform, merchant: Credentials, worker_database: Database, publisher: NatsPublisher, running: Any
) -> None:
    nats_bus = publisher.bus
    await drain(worker_database, [])
    poison, fine = await _events(platform, merchant, 2)
    assert await publish_pending(worker_database, [publisher]) == 2
    flaky = Flaky(f"f_{new_id('evt')}", failing={poison["id"]})
    running(flaky)

    async def dead_lettered() -> bool:
        return len(await list_dead_letters(nats_bus)) == 1

    await _wait_for(dead_lettered, "the failing event dead-lettered")
    assert flaky.calls.count(poison["id"]) == QUICK.max_deliver
    assert await _effects(platform, flaky.name) == {fine["id"]: 1}
    (letter,) = await list_dead_letters(nats_bus, flaky.name)
    original_subject = f"{nats_bus.subject_prefix}.events.test.customer.created"
    assert (letter.consumer, letter.event_id, letter.event_type, letter.original_subject, letter.deliveries) == (
        flaky.name,
        poison["id"],
        "customer.created",
        original_subject,
        QUICK.max_deliver,
    )
    assert letter.last_error == f"RuntimeError: cannot handle {poison['id']} second line"
    assert orjson.loads(letter.data) == poison
    assert await list_dead_letters(nats_bus, "someone_else") == []

    env = {**platform.database.env(), **nats_env(nats_bus)}
    listed = await run_bastion("events", "dlq", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    (shown,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert shown["event_id"] == poison["id"]
    assert shown["original_subject"] == original_subject
    assert shown["deliveries"] == QUICK.max_deliver
    assert shown["last_error"] == letter.last_error
    assert shown["dead_lettered_at"]
    text = await run_bastion("events", "dlq", "list", "--consumer", flaky.name, env=env)
    assert text.returncode == 0, text.stderr
    assert poison["id"] in text.stdout
    assert f"deliveries={QUICK.max_deliver}" in text.stdout

    # Fixed: the re-drive reaches the consumer again, and only the event it never handled acts.
    flaky.failing.clear()
    redriven = await run_bastion("events", "dlq", "redrive", "--consumer", flaky.name, "--event", poison["id"], env=env)
    assert redriven.returncode == 0, redriven.stderr
    assert "re-drove 1 dead letters" in redriven.stdout

    async def poison_handled() -> bool:
        return poison["id"] in await _effects(platform, flaky.name)

    await _wait_for(poison_handled, "the re-driven event handled")
    assert await _effects(platform, flaky.name) == {poison["id"]: 1, fine["id"]: 1}
    assert await list_dead_letters(nats_bus) == []


async def test_a_message_that_is_not_an_event_is_dead_lettered_at_once(
    nats_bus: NatsBus, worker_database: Database, running: Any
) -> None:
    client = await connect(nats_bus, "bastion-tests")
    try:
        js = client.jetstream(timeout=nats_bus.publish_timeout_s)
        await ensure_streams(nats_bus, js)
        await js.publish(f"{nats_bus.subject_prefix}.events.test.customer.created", b"not json")
    finally:
        await client.close()
    flaky = Flaky(f"f_{new_id('evt')}", failing=set())
    running(flaky)

    async def dead_lettered() -> bool:
        return len(await list_dead_letters(nats_bus)) == 1

    await _wait_for(dead_lettered, "the message dead-lettered")
    (letter,) = await list_dead_letters(nats_bus)
    assert letter.deliveries == 1
    assert letter.last_error.startswith("the body is not JSON")
    assert flaky.calls == []
