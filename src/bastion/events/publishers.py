"""The bus publishers the worker adds to the relay's subscribers: one per configured broker."""

from typing import Protocol

from bastion.events.bus_kafka import KafkaPublisher
from bastion.events.bus_nats import NatsPublisher
from bastion.events.resources import Event
from bastion.platform.db import Connection
from bastion.platform.settings import Settings


class Publisher(Protocol):
    """A relay subscriber that holds a broker connection, closed when the worker stops."""

    @property
    def name(self) -> str: ...

    async def handle_batch(self, connection: Connection, events: list[Event]) -> None: ...

    async def close(self) -> None: ...


def bus_publishers(settings: Settings) -> list[Publisher]:
    """None unless BASTION_NATS_URL or BASTION_KAFKA_BOOTSTRAP_SERVERS is set: the embedded default needs no broker."""
    publishers: list[Publisher] = []
    if settings.nats is not None:
        publishers.append(NatsPublisher(settings.nats))
    if settings.kafka is not None:
        publishers.append(KafkaPublisher(settings.kafka))
    return publishers
