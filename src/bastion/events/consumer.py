"""A consumer of Bastion's own events on NATS JetStream, with a dead-letter queue.

A durable pull consumer with explicit acks hands each event to a `Subscriber` (the relay's
protocol: `name`, `async handle(connection, event)`). Deduplication is on the event id, in the
same inbox table the relay uses (`event_inbox (subscriber, event_id)`): the inbox row commits
in the handler's transaction, so a message delivered again (after a crash between the commit
and the ack, a JetStream redelivery or a re-drive) has no second effect.

A handler that raises gets its message again after a backoff, up to `max_deliver` attempts;
after the last, the message goes to `<prefix>.dlq.<consumer>.<original subject>` in the
dead-letter stream, with the last error, the delivery count and the original subject in
headers, and is terminated on the source. The server allows one delivery more than the
attempts: a consumer that stops between its last failure and the dead-lettering finds the
message once more and dead-letters it without another attempt, so nothing is lost.
"""

import asyncio
import contextlib
import re
from dataclasses import dataclass

import orjson
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bastion.events import repository
from bastion.events.bus import EVENT_ID_HEADER, EVENT_TYPE_HEADER
from bastion.events.bus_nats import MSG_ID_HEADER, connect, dlq_subject, ensure_streams, events_filter
from bastion.events.errors import BusUnavailable
from bastion.events.relay import Subscriber, apply_events
from bastion.events.resources import Event
from bastion.kernel.errors import invariant
from bastion.platform.db import Database
from bastion.platform.logging import get_logger
from bastion.platform.settings import NatsBus

_log = get_logger(__name__)

ORIGINAL_SUBJECT_HEADER = "Bastion-Original-Subject"
CONSUMER_HEADER = "Bastion-Consumer"
DELIVERIES_HEADER = "Bastion-Deliveries"
LAST_ERROR_HEADER = "Bastion-Last-Error"
LAST_ERROR_LENGTH_MAX = 1_000
RECONNECT_DELAY_S = 1.0
# Durable consumer names are single NATS tokens: they also name the dead-letter subject.
_CONSUMER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class ConsumerPolicy:
    # Attempts of the handler before the message is dead-lettered.
    max_deliver: int = 5
    # How long JetStream waits for an ack before it delivers the message again.
    ack_wait_s: float = 30.0
    # Redelivery after a failed attempt: this, doubling, up to the maximum.
    retry_delay_first_s: float = 1.0
    retry_delay_max_s: float = 30.0
    fetch_batch_max: int = 10
    # How long one fetch waits for messages; also how soon `stop` is noticed.
    fetch_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        invariant(1 <= self.max_deliver <= 100, "max_deliver must be 1-100")
        invariant(1 <= self.fetch_batch_max <= 256, "fetch_batch_max must be 1-256")
        invariant(self.ack_wait_s > 0 and self.fetch_timeout_s > 0, "ack_wait_s and fetch_timeout_s must be positive")


class NotAnEvent(ValueError):
    """A message whose body is not an event: no attempt can succeed, so it is dead-lettered at once."""


def _event(data: bytes) -> Event:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise NotAnEvent(f"the body is not JSON: {error}") from error
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise NotAnEvent("the body is not an event (no string id and type)")
    return event  # type: ignore[return-value]  # checked above as far as the consumer relies on it


def _one_line(text: str) -> str:
    # A header value must not hold a line break; a bound keeps the dead letter small.
    return " ".join(text.split())[:LAST_ERROR_LENGTH_MAX]


class Consumer:
    """One durable consumer of the events stream: `run` until `stop` is set."""

    def __init__(
        self,
        bus: NatsBus,
        database: Database,
        subscriber: Subscriber,
        *,
        filter_subject: str | None = None,
        policy: ConsumerPolicy | None = None,
    ) -> None:
        invariant(_CONSUMER_NAME.fullmatch(subscriber.name) is not None, "a consumer's name is 1-64 letters, digits, '_' or '-'")
        self.bus = bus
        self.database = database
        self.subscriber = subscriber
        self.filter_subject = filter_subject or events_filter(bus)
        self.policy = policy if policy is not None else ConsumerPolicy()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; a lost connection is made again after a pause."""
        while not stop.is_set():
            try:
                await self._run_connected(stop)
            except (BusUnavailable, NatsError):
                _log.warning("bus_consumer_disconnected", consumer=self.subscriber.name, exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=RECONNECT_DELAY_S)

    async def _run_connected(self, stop: asyncio.Event) -> None:
        client = await connect(self.bus, f"bastion-consumer-{self.subscriber.name}")
        try:
            js = client.jetstream(timeout=self.bus.publish_timeout_s)
            await ensure_streams(self.bus, js)
            subscription = await js.pull_subscribe(
                self.filter_subject,
                durable=self.subscriber.name,
                stream=self.bus.stream,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=self.policy.ack_wait_s,
                    # One spare delivery, to dead-letter what a stop cut short (see the module's doc).
                    max_deliver=self.policy.max_deliver + 1,
                ),
            )
            _log.info("bus_consumer_started", consumer=self.subscriber.name, subject=self.filter_subject)
            while not stop.is_set():
                if client.is_closed:
                    raise BusUnavailable("the connection to NATS was lost")
                try:
                    messages = await subscription.fetch(self.policy.fetch_batch_max, timeout=self.policy.fetch_timeout_s)
                except TimeoutError:
                    continue
                for message in messages:
                    await self._process(js, message)
        finally:
            if not client.is_closed:
                await client.close()

    async def _process(self, js: JetStreamContext, message: Msg) -> None:
        deliveries = message.metadata.num_delivered
        try:
            event = _event(message.data)
        except NotAnEvent as error:
            await self._dead_letter(js, message, deliveries, str(error))
            return
        if deliveries > self.policy.max_deliver:
            await self._dead_letter(
                js, message, deliveries, "no attempt left: the consumer stopped before it dead-lettered the message"
            )
            return
        try:
            async with self.database.transaction() as connection:
                if await repository.claim_inbox(connection, self.subscriber.name, [event["id"]]):
                    await apply_events(connection, self.subscriber, [event])
        except Exception as error:  # noqa: BLE001  (a failing handler is retried, then dead-lettered; the loop goes on)
            _log.warning(
                "bus_consumer_handler_failed",
                consumer=self.subscriber.name,
                event_id=event["id"],
                deliveries=deliveries,
                exc_info=True,
            )
            if deliveries >= self.policy.max_deliver:
                await self._dead_letter(js, message, deliveries, f"{type(error).__name__}: {error}")
            else:
                delay_s = min(self.policy.retry_delay_first_s * 2 ** (deliveries - 1), self.policy.retry_delay_max_s)
                await message.nak(delay=delay_s)
            return
        await message.ack()

    async def _spare_delivery(self, js: JetStreamContext, message: Msg, event: Event, deliveries: int) -> None:
        """The delivery after the last attempt: the consumer stopped after that attempt, before its ack
        or its dead-lettering. Acked if the attempt committed, dead-lettered if not."""
        async with self.database.transaction() as connection:
            handled = await repository.inbox_holds(connection, self.subscriber.name, event["id"])
        if handled:
            await message.ack()
        else:
            await self._dead_letter(
                js, message, deliveries, "the consumer stopped after its last attempt; the error is in its log"
            )

    async def _dead_letter(self, js: JetStreamContext, message: Msg, deliveries: int, error: str) -> None:
        source = message.headers or {}
        sequence = message.metadata.sequence.stream
        await js.publish(
            dlq_subject(self.bus, self.subscriber.name, message.subject),
            message.data,
            timeout=self.bus.publish_timeout_s,
            stream=self.bus.dlq_stream,
            headers={
                # The same dead letter twice (a stop after this publish, before the term) is dropped.
                MSG_ID_HEADER: f"{self.subscriber.name}.{sequence}",
                EVENT_ID_HEADER: source.get(EVENT_ID_HEADER, ""),
                EVENT_TYPE_HEADER: source.get(EVENT_TYPE_HEADER, ""),
                ORIGINAL_SUBJECT_HEADER: message.subject,
                CONSUMER_HEADER: self.subscriber.name,
                DELIVERIES_HEADER: str(deliveries),
                LAST_ERROR_HEADER: _one_line(error),
            },
        )
        await message.term()
        _log.error(
            "bus_consumer_dead_lettered",
            consumer=self.subscriber.name,
            event_id=source.get(EVENT_ID_HEADER),
            deliveries=deliveries,
        )
