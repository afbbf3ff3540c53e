"""kill -9 of the worker in the middle of a relay batch: after a restart every event is
published and every event has exactly one effect (the inbox absorbs the redelivery); with the
event bus configured, every event is in the JetStream stream once and on Kafka at least once."""

import asyncio
import dataclasses
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable

import pytest

from bastion import bootstrap
from bastion.events import Consumer, ConsumerPolicy
from bastion.platform.settings import KafkaBus, NatsBus, Settings
from tests.support import postgres
from tests.support.brokers import kafka_env, kafka_messages, nats_env, stream_messages
from tests.support.platform import Platform
from tests.support.subscribers import EffectRecorder, create_effects_table, effect_counts, effect_recorder
from tests.support.worker import log_tail, start_worker

pytestmark = pytest.mark.slow

EVENT_COUNT = 300
# Fewer with the bus: each event is also published twice, and then consumed.
BUS_EVENT_COUNT = 150
# Enough to be inside the first batch (100 events at 20 ms each) when the kill lands.
EFFECTS_BEFORE_KILL_MIN = 10
START_TIMEOUT_S = 60.0
PUBLISH_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.02


async def _kill_during_a_batch_then_restart(
    private_database: postgres.TestDatabase,
    event_count: int,
    bus_env: dict[str, str] | None = None,
    check: Callable[[Platform, set[str]], Awaitable[None]] | None = None,
) -> None:
    """The worker (with the settings `bus_env`) killed in its first batch of `event_count` events,
    then restarted until all are published; each had exactly one effect. `check` looks at what
    else happened, before the platform closes."""
    settings = dataclasses.replace(
        Settings.from_env(),
        data_dir=private_database.data_dir,
        database_url=private_database.owner_url,
        db_role_prefix=private_database.role_prefix,
    )
    platform = Platform(private_database, settings)
    log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in the finally below, after the workers)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        async with platform.owner.transaction() as connection:
            await create_effects_table(connection, private_database.roles.worker)
        merchant = await platform.merchant()
        async with platform.client(merchant) as client:
            for index in range(event_count):
                response = await client.post("/v1/customers", json={"name": f"customer {index}"})
                assert response.status_code == 200, response.text

        async def counts() -> tuple[int, int, int]:
            """Effects, events published, events with an effect but not published."""
            async with platform.owner.transaction() as connection:
                row = await connection.fetchrow(
                    "SELECT (SELECT count(*) FROM relay_effects),"
                    " (SELECT count(*) FROM events WHERE published_at IS NOT NULL),"
                    " (SELECT count(*) FROM events e WHERE published_at IS NULL"
                    "  AND EXISTS (SELECT 1 FROM relay_effects r WHERE r.event_id = e.id))"
                )
            return row[0], row[1], row[2]

        workers.append(start_worker(private_database, log, bus_env))
        deadline = time.monotonic() + START_TIMEOUT_S
        while (await counts())[0] < EFFECTS_BEFORE_KILL_MIN:
            assert workers[0].poll() is None, log_tail(log)
            assert time.monotonic() < deadline, f"no effects within {START_TIMEOUT_S} s: {log_tail(log)}"
            await asyncio.sleep(POLL_INTERVAL_S)
        os.kill(workers[0].pid, signal.SIGKILL)
        assert workers[0].wait(timeout=STOP_TIMEOUT_S) == -signal.SIGKILL

        effects, published, applied_unpublished = await counts()
        assert effects < event_count
        assert published < event_count
        assert applied_unpublished > 0, "the kill must land after some effects committed and before their batch was marked"

        workers.append(start_worker(private_database, log, bus_env))
        deadline = time.monotonic() + PUBLISH_TIMEOUT_S
        while (await counts())[1] < event_count:
            assert workers[1].poll() is None, log_tail(log)
            assert time.monotonic() < deadline, f"not all events published within {PUBLISH_TIMEOUT_S} s: {log_tail(log)}"
            await asyncio.sleep(POLL_INTERVAL_S)
        workers[1].send_signal(signal.SIGTERM)
        assert workers[1].wait(timeout=STOP_TIMEOUT_S) == 0, log_tail(log)

        async with platform.owner.transaction() as connection:
            event_ids = {row["id"] for row in await connection.fetch("SELECT id FROM events")}
            effects_by_event = await effect_counts(connection, effect_recorder.name)
        assert len(event_ids) == event_count
        assert set(effects_by_event) == event_ids
        doubled = {event_id: count for event_id, count in effects_by_event.items() if count != 1}
        assert doubled == {}, "an event had more than one effect"
        if check is not None:
            await check(platform, event_ids)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=STOP_TIMEOUT_S)
        log.close()
        await platform.close()


async def test_kill_during_a_batch_then_restart(private_database: postgres.TestDatabase) -> None:
    await _kill_during_a_batch_then_restart(private_database, EVENT_COUNT)


async def test_kill_while_publishing_to_the_bus_then_restart(
    private_database: postgres.TestDatabase, nats_bus: NatsBus, kafka_bus: KafkaBus
) -> None:
    """With the NATS and Kafka publishers: every event once in the JetStream stream and once to a
    consumer that dedups on the inbox; at least once on Kafka, once to a consumer that dedups on
    the event id header."""

    async def check(platform: Platform, event_ids: set[str]) -> None:
        messages = await stream_messages(nats_bus, nats_bus.stream)
        assert sorted(message.headers["Nats-Msg-Id"] for message in messages if message.headers) == sorted(event_ids)

        recorder = EffectRecorder("bus_consumer")
        stop = asyncio.Event()
        database = bootstrap.role_database(platform.settings, private_database.owner_url, private_database.roles.worker)
        consumer = asyncio.create_task(
            Consumer(nats_bus, database, recorder, policy=ConsumerPolicy(fetch_timeout_s=0.2)).run(stop)
        )
        try:
            deadline = time.monotonic() + PUBLISH_TIMEOUT_S
            while len(effects := await _effects(platform, recorder.name)) < len(event_ids):
                assert time.monotonic() < deadline, f"{len(effects)} of {len(event_ids)} consumed within {PUBLISH_TIMEOUT_S} s"
                await asyncio.sleep(POLL_INTERVAL_S)
        finally:
            stop.set()
            await asyncio.wait_for(consumer, timeout=STOP_TIMEOUT_S)
            await database.dispose()
        assert await _effects(platform, recorder.name) == dict.fromkeys(event_ids, 1)

        messages_on_kafka = kafka_messages(kafka_bus, kafka_bus.topic, len(event_ids))
        on_kafka = [dict(message.headers() or [])["Bastion-Event-Id"].decode() for message in messages_on_kafka]
        # At least once; deduplicated on the event id, exactly once.
        assert len(on_kafka) >= len(event_ids)
        assert dict.fromkeys(on_kafka, 1) == dict.fromkeys(event_ids, 1)

    await _kill_during_a_batch_then_restart(
        private_database, BUS_EVENT_COUNT, {**nats_env(nats_bus), **kafka_env(kafka_bus)}, check
    )


async def _effects(platform: Platform, subscriber: str) -> dict[str, int]:
    async with platform.owner.transaction() as connection:
        return await effect_counts(connection, subscriber)
