"""The outbox on Kafka, against a real Kafka-protocol broker (Tansu): topic, key and headers as
documented, a topic per object type, and a broker that is down."""

import dataclasses
import time

import orjson
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from bastion.events import BusUnavailable, Event, publish_pending
from bastion.events.bus_kafka import KafkaPublisher
from bastion.platform.db import Database
from bastion.platform.settings import KafkaBus
from tests.support.brokers import kafka_messages
from tests.support.platform import Credentials, Platform
from tests.support.postgres import free_port
from tests.support.subscribers import drain

PARTITIONS = 3
CREATE_TIMEOUT_S = 10.0


async def _customer_events(platform: Platform, merchant: Credentials, count: int) -> list[Event]:
    """`count` events of each of two new customers, oldest first."""
    async with platform.client(merchant) as client:
        for customer in range(2):
            created = (await client.post("/v1/customers", json={"name": f"kafka {customer}"})).json()
            for index in range(1, count):
                response = await client.post(f"/v1/customers/{created['id']}", json={"name": f"kafka {customer}.{index}"})
                assert response.status_code == 200, response.text
        listed = (await client.get("/v1/events", params={"limit": 2 * count})).json()["data"]
    events: list[Event] = list(reversed(listed))
    return events


def _create_topic(bus: KafkaBus, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bus.bootstrap_servers})  # held until the answer: its end cancels the request
    (future,) = admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values()
    future.result(timeout=CREATE_TIMEOUT_S)


async def test_relay_publishes_with_the_object_id_as_key_and_the_event_in_headers(
    platform: Platform, merchant: Credentials, worker_database: Database, kafka_bus: KafkaBus
) -> None:
    _create_topic(kafka_bus, kafka_bus.topic)
    publisher = KafkaPublisher(kafka_bus)
    await drain(worker_database, [])
    events = await _customer_events(platform, merchant, 3)
    assert await publish_pending(worker_database, [publisher]) == len(events)
    await publisher.close()

    messages = kafka_messages(kafka_bus, kafka_bus.topic, len(events))
    by_id = {orjson.loads(message.value() or b"")["id"]: message for message in messages}
    assert len(messages) == len(by_id) == len(events)
    partitions: dict[bytes, set[int | None]] = {}
    for event in events:
        message = by_id[event["id"]]
        assert orjson.loads(message.value() or b"") == event
        assert message.key() == str(event["data"]["object"]["id"]).encode()
        assert dict(message.headers() or []) == {
            "Bastion-Event-Id": event["id"].encode(),
            "Bastion-Event-Type": event["type"].encode(),
        }
        partitions.setdefault(message.key() or b"", set()).add(message.partition())
    # One object's events in one partition, in the order published.
    assert all(len(found) == 1 for found in partitions.values()), partitions
    for key in partitions:
        in_partition = [orjson.loads(message.value() or b"")["id"] for message in messages if message.key() == key]
        assert in_partition == [event["id"] for event in events if str(event["data"]["object"]["id"]).encode() == key]


async def test_a_topic_per_object_type(
    platform: Platform, merchant: Credentials, worker_database: Database, kafka_bus: KafkaBus
) -> None:
    per_object = dataclasses.replace(kafka_bus, topic=kafka_bus.topic.replace(".events", ".{object}"))
    topic = per_object.topic.replace("{object}", "customer")
    _create_topic(per_object, topic)
    publisher = KafkaPublisher(per_object)
    await drain(worker_database, [])
    events = await _customer_events(platform, merchant, 1)
    assert await publish_pending(worker_database, [publisher]) == len(events)
    await publisher.close()
    messages = kafka_messages(per_object, topic, len(events))
    assert sorted(orjson.loads(message.value() or b"")["id"] for message in messages) == sorted(event["id"] for event in events)


async def test_a_broker_that_is_down_fails_the_publish_within_its_timeout(
    platform: Platform, merchant: Credentials, kafka_bus: KafkaBus
) -> None:
    nowhere = KafkaPublisher(dataclasses.replace(kafka_bus, bootstrap_servers=f"127.0.0.1:{free_port()}", publish_timeout_s=0.5))
    event = (await _customer_events(platform, merchant, 1))[0]
    started = time.monotonic()
    with pytest.raises(BusUnavailable, match=event["id"]):
        await nowhere.handle_batch(None, [event])  # type: ignore[arg-type]  # the publisher does not use the connection
    with pytest.raises(BusUnavailable, match="not tried again yet"):
        await nowhere.handle_batch(None, [event])  # type: ignore[arg-type]
    assert time.monotonic() - started < 5.0
