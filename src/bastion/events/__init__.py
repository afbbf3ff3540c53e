"""Events: the transactional outbox, its relay to in-process subscribers, and GET /v1/events."""

from bastion.events.relay import Subscriber, load_subscribers, publish_pending, run_relay
from bastion.events.resources import Event
from bastion.events.service import EVENT_TYPES, emit

__all__ = ["EVENT_TYPES", "Event", "Subscriber", "emit", "load_subscribers", "publish_pending", "run_relay"]
