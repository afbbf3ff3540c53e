"""Events: the transactional outbox, its relay to in-process subscribers and to the event bus
(NATS JetStream, Kafka), the bus's consumers and dead letters, and GET /v1/events."""

from bastion.events.consumer import Consumer, ConsumerPolicy
from bastion.events.dlq import DEAD_LETTERS_MAX, DeadLetter, list_dead_letters, redrive
from bastion.events.errors import BusUnavailable
from bastion.events.publishers import Publisher, bus_publishers
from bastion.events.relay import Subscriber, load_subscribers, publish_pending, run_relay, wake_on_notify
from bastion.events.resources import Event
from bastion.events.service import emit, event_types, register_event_types, to_resource

__all__ = [
    "DEAD_LETTERS_MAX",
    "BusUnavailable",
    "Consumer",
    "ConsumerPolicy",
    "DeadLetter",
    "Event",
    "Publisher",
    "Subscriber",
    "bus_publishers",
    "emit",
    "event_types",
    "list_dead_letters",
    "load_subscribers",
    "publish_pending",
    "redrive",
    "register_event_types",
    "run_relay",
    "to_resource",
    "wake_on_notify",
]
