"""What the NATS and Kafka publishers share: the message an event becomes, its headers, and
a cooldown that keeps a batch from waiting out one timeout per event while a broker is down."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import orjson

from bastion.events.errors import BusUnavailable
from bastion.events.resources import Event

# Every message carries these, on NATS and on Kafka; consumers deduplicate on the event id.
EVENT_ID_HEADER = "Bastion-Event-Id"
EVENT_TYPE_HEADER = "Bastion-Event-Type"


def livemode_token(event: Event) -> str:
    return "live" if event["livemode"] else "test"


def payload(event: Event) -> bytes:
    """The message body: the event as GET /v1/events/{id} answers it."""
    return orjson.dumps(event)


def object_id(event: Event) -> str:
    """The id of the object the event is about (Kafka's key, for per-object order); the event's own id if it has none."""
    object_id = event["data"]["object"].get("id")
    return object_id if isinstance(object_id, str) and object_id else event["id"]


def object_type(event: Event) -> str:
    """The type of the object the event is about (`payment_intent`), from the event type if the object names none."""
    name = event["data"]["object"].get("object")
    return name if isinstance(name, str) and name else event["type"].rpartition(".")[0]


@dataclass(slots=True)
class Cooldown:
    """After a failed publish, refuse at once for `period_s`: while the broker is down, a batch of
    100 events costs one timeout, not 100. The relay retries each refused event with its backoff."""

    period_s: float
    _until_s: float = field(default=0.0)

    @contextmanager
    def attempt(self, broker: str, events: list[Event], failures: tuple[type[Exception], ...]) -> Iterator[None]:
        """One publish of `events`: refused during the cooldown; `failures` (the client's errors)
        become BusUnavailable."""
        if time.monotonic() < self._until_s:
            raise BusUnavailable(f"{broker} failed less than {self.period_s} s ago: not tried again yet")
        try:
            yield
        except BusUnavailable:
            self._until_s = time.monotonic() + self.period_s
            raise
        except failures as error:
            self._until_s = time.monotonic() + self.period_s
            raise BusUnavailable(f"{broker} did not take {described(events)}: {error or type(error).__name__}") from error
        self._until_s = 0.0


def described(events: list[Event]) -> str:
    """`event evt_...`, or `3 events from evt_...`: for errors and logs."""
    return f"event {events[0]['id']}" if len(events) == 1 else f"{len(events)} events from {events[0]['id']}"
