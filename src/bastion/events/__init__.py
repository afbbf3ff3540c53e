"""Events: the transactional outbox, its relay to in-process subscribers, and GET /v1/events."""

from bastion.events.relay import Subscriber, load_subscribers, publish_pending, run_relay, wake_on_notify
from bastion.events.resources import Event
from bastion.events.service import emit, event_types, register_event_types, to_resource

__all__ = [
    "Event",
    "Subscriber",
    "emit",
    "event_types",
    "load_subscribers",
    "publish_pending",
    "register_event_types",
    "run_relay",
    "to_resource",
    "wake_on_notify",
]
