"""The outbox on NATS JetStream: the connection, the two streams, and the relay's publisher.

Subjects are `<prefix>.events.<live|test>.<event type>` in the events stream and
`<prefix>.dlq.<consumer>.<original subject>` in the dead-letter stream. Each message's
`Nats-Msg-Id` is its event id, so that JetStream drops a second publish of an event within the
stream's duplicate window (a relay that crashed after the PubAck, before its commit).
"""

import asyncio

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError

from bastion.events.bus import EVENT_ID_HEADER, EVENT_TYPE_HEADER, Cooldown, livemode_token, payload
from bastion.events.errors import BusUnavailable
from bastion.events.resources import Event
from bastion.platform.db import Connection
from bastion.platform.logging import get_logger
from bastion.platform.settings import NatsBus

_log = get_logger(__name__)

PUBLISHER_NAME = "bus.nats"
MSG_ID_HEADER = "Nats-Msg-Id"
CONNECT_TIMEOUT_S = 5
# A lost connection is tried again a few times, then closed: the publisher connects anew on its
# next event and a consumer on its next round, so no loop waits on a server forever (nor does a
# first connect, which the client tries as often).
RECONNECT_ATTEMPTS_MAX = 2
RECONNECT_WAIT_S = 1
# JetStream's answer when a stream exists with another configuration: update it instead.
_STREAM_NAME_IN_USE = 10058


def event_subject(bus: NatsBus, event: Event) -> str:
    return f"{bus.subject_prefix}.events.{livemode_token(event)}.{event['type']}"


def events_filter(bus: NatsBus) -> str:
    return f"{bus.subject_prefix}.events.>"


def dlq_subject(bus: NatsBus, consumer: str, original_subject: str) -> str:
    return f"{bus.subject_prefix}.dlq.{consumer}.{original_subject}"


def dlq_filter(bus: NatsBus, consumer: str | None) -> str:
    return f"{bus.subject_prefix}.dlq.{consumer or '*'}.>"


def headers(event: Event, msg_id: str) -> dict[str, str]:
    return {MSG_ID_HEADER: msg_id, EVENT_ID_HEADER: event["id"], EVENT_TYPE_HEADER: event["type"]}


async def _client_error(error: Exception) -> None:
    # The client's own report of a failed (re)connect; the caller raises BusUnavailable for it.
    _log.warning("nats_client_error", error=str(error) or type(error).__name__)


async def connect(bus: NatsBus, client_name: str) -> Client:
    """A connection, tried RECONNECT_ATTEMPTS_MAX times per server before it gives up."""
    client = Client()
    try:
        await client.connect(
            servers=list(bus.servers),
            name=client_name,
            connect_timeout=CONNECT_TIMEOUT_S,
            reconnect_time_wait=RECONNECT_WAIT_S,
            max_reconnect_attempts=RECONNECT_ATTEMPTS_MAX,
            allow_reconnect=True,
            error_cb=_client_error,
        )
    except (NatsError, OSError) as error:
        raise BusUnavailable(f"cannot connect to NATS: {error or type(error).__name__}") from error
    return client


async def ensure_streams(bus: NatsBus, js: JetStreamContext) -> None:
    """Create the events and dead-letter streams, or bring their configuration up to date: idempotent."""
    for config in (
        StreamConfig(
            name=bus.stream,
            subjects=[events_filter(bus)],
            storage=StorageType.FILE,
            duplicate_window=float(bus.duplicate_window_s),
            max_age=float(bus.max_age_s),
        ),
        StreamConfig(
            name=bus.dlq_stream,
            subjects=[f"{bus.subject_prefix}.dlq.>"],
            storage=StorageType.FILE,
            duplicate_window=float(bus.duplicate_window_s),
            max_age=float(bus.max_age_s),
        ),
    ):
        try:
            await js.add_stream(config)
        except BadRequestError as error:
            if error.err_code != _STREAM_NAME_IN_USE:
                raise
            await js.update_stream(config)


class NatsPublisher:
    """A relay subscriber: publishes a batch of events and waits for JetStream's PubAcks; raising
    makes the relay retry. It connects, and creates or updates the streams, on its first event."""

    name = PUBLISHER_NAME

    def __init__(self, bus: NatsBus) -> None:
        self.bus = bus
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._cooldown = Cooldown(bus.publish_timeout_s)

    async def _jetstream(self) -> JetStreamContext:
        if self._client is None or self._client.is_closed:
            self._client = await connect(self.bus, "bastion-relay")
            self._js = None
        if self._js is None:
            js = self._client.jetstream(timeout=self.bus.publish_timeout_s)
            await ensure_streams(self.bus, js)
            self._js = js
        if not self._client.is_connected:
            # Reconnecting: a publish now would only wait out its timeout.
            raise BusUnavailable("NATS is not connected")
        return self._js

    async def handle_batch(self, connection: Connection, events: list[Event]) -> None:
        """Publish the batch at once and wait for every PubAck (one fails: the relay tries the
        events again one at a time)."""
        del connection  # the effect is the broker's: the inbox rows commit after the PubAcks
        with self._cooldown.attempt("NATS", events, (NatsError, OSError)):
            js = await self._jetstream()
            acks = await asyncio.gather(
                *(
                    js.publish(
                        event_subject(self.bus, event),
                        payload(event),
                        timeout=self.bus.publish_timeout_s,
                        stream=self.bus.stream,
                        headers=headers(event, event["id"]),
                    )
                    for event in events
                )
            )
        for event, ack in zip(events, acks, strict=True):
            if ack.duplicate:
                _log.info("bus_publish_duplicate", broker="nats", event_id=event["id"])

    async def close(self) -> None:
        if self._client is not None and not self._client.is_closed:
            await self._client.close()
