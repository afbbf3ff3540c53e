"""The outbox on Kafka: the relay's publisher, an idempotent producer (acks=all).

The key is the id of the object the event is about, so one object's events stay in one
partition, in the order the relay publishes them. The idempotent producer covers only its own
retries: a relay that crashes after the delivery report and before its commit publishes the
event again, so consumers deduplicate on the `Bastion-Event-Id` header.
"""

import asyncio

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from bastion.events.bus import EVENT_ID_HEADER, EVENT_TYPE_HEADER, Cooldown, described, object_id, object_type, payload
from bastion.events.errors import BusUnavailable
from bastion.events.resources import Event
from bastion.platform.db import Connection
from bastion.platform.settings import KAFKA_TOPIC_OBJECT, KafkaBus

PUBLISHER_NAME = "bus.kafka"


def event_topic(bus: KafkaBus, event: Event) -> str:
    return bus.topic.replace(KAFKA_TOPIC_OBJECT, object_type(event))


class KafkaPublisher:
    """A relay subscriber: produces a batch of events and waits for their delivery reports
    (acks=all); raising makes the relay retry."""

    name = PUBLISHER_NAME

    def __init__(self, bus: KafkaBus) -> None:
        self.bus = bus
        timeout_ms = round(bus.publish_timeout_s * 1000)
        self._producer = Producer(
            {
                "bootstrap.servers": bus.bootstrap_servers,
                "client.id": "bastion-relay",
                "enable.idempotence": True,
                "acks": "all",
                # A message not delivered by then is reported failed, and the relay retries the event.
                "message.timeout.ms": timeout_ms,
                "socket.connection.setup.timeout.ms": max(timeout_ms, 1000),
                "linger.ms": 0,
            }
        )
        self._cooldown = Cooldown(bus.publish_timeout_s)

    def _produce_and_flush(self, events: list[Event]) -> list[KafkaError]:
        """In a thread: librdkafka calls the delivery callbacks from flush(). The errors reported."""
        reports: list[KafkaError | None] = []

        def delivered(error: KafkaError | None, _message: Message) -> None:
            reports.append(error)

        for event in events:
            self._producer.produce(
                event_topic(self.bus, event),
                value=payload(event),
                key=object_id(event).encode(),
                headers=[(EVENT_ID_HEADER, event["id"].encode()), (EVENT_TYPE_HEADER, event["type"].encode())],
                on_delivery=delivered,
            )
        # A little past message.timeout.ms, by when librdkafka has reported either way.
        undelivered = self._producer.flush(self.bus.publish_timeout_s + 1.0)
        if undelivered or len(reports) < len(events):
            raise BusUnavailable(f"Kafka did not confirm {described(events)} within {self.bus.publish_timeout_s} s")
        return [error for error in reports if error is not None]

    async def handle_batch(self, connection: Connection, events: list[Event]) -> None:
        """Produce the batch, in order (one object's events stay in order in its partition), and
        wait for every delivery report (one fails: the relay tries the events again one at a time)."""
        del connection  # the effect is the broker's: the inbox rows commit after the delivery reports
        with self._cooldown.attempt("Kafka", events, (KafkaException, BufferError)):
            errors = await asyncio.to_thread(self._produce_and_flush, events)
            if errors:
                raise BusUnavailable(f"Kafka did not take {described(events)}: {errors[0].str()}")

    async def close(self) -> None:
        await asyncio.to_thread(self._producer.flush, self.bus.publish_timeout_s)
