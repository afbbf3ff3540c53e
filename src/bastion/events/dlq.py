"""The dead letters of the NATS consumers: list them, and re-drive them to their consumers.

A re-drive publishes the message again, unchanged, to its original subject, with a fresh
`Nats-Msg-Id` (`<event id>.redrive.<dead letter's sequence>`): the event id as message id
would be dropped by JetStream's duplicate window if the event was first published within it.
Every consumer of that subject receives it again; each deduplicates on the event id, so only
those that never handled it act on it. The dead letter is deleted after the PubAck; a re-drive
cut short in between re-drives it again under the same message id, which JetStream drops.
"""

from dataclasses import dataclass
from datetime import datetime

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from bastion.events.bus import EVENT_ID_HEADER, EVENT_TYPE_HEADER
from bastion.events.bus_nats import MSG_ID_HEADER, connect, dlq_filter, ensure_streams
from bastion.events.consumer import CONSUMER_HEADER, DELIVERIES_HEADER, LAST_ERROR_HEADER, ORIGINAL_SUBJECT_HEADER
from bastion.events.errors import BusUnavailable
from bastion.kernel.errors import invariant
from bastion.platform.settings import NatsBus

DEAD_LETTERS_MAX = 1_000
# How many dead letters one look for an event's reads at the most.
DEAD_LETTERS_SCANNED_MAX = 100_000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    sequence: int
    consumer: str
    event_id: str
    event_type: str
    original_subject: str
    deliveries: int
    last_error: str
    dead_lettered_at: datetime | None
    data: bytes

    def summary(self) -> dict[str, object]:
        """What `bastion events dlq list --json` prints of it."""
        return {
            "sequence": self.sequence,
            "consumer": self.consumer,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "original_subject": self.original_subject,
            "deliveries": self.deliveries,
            "last_error": self.last_error,
            "dead_lettered_at": self.dead_lettered_at.isoformat() if self.dead_lettered_at else None,
        }


def _dead_letter(raw: RawStreamMsg) -> DeadLetter:
    headers = raw.headers or {}
    deliveries = headers.get(DELIVERIES_HEADER, "0")
    return DeadLetter(
        sequence=raw.seq or 0,
        consumer=headers.get(CONSUMER_HEADER, ""),
        event_id=headers.get(EVENT_ID_HEADER, ""),
        event_type=headers.get(EVENT_TYPE_HEADER, ""),
        original_subject=headers.get(ORIGINAL_SUBJECT_HEADER, ""),
        deliveries=int(deliveries) if deliveries.isdigit() else 0,
        last_error=headers.get(LAST_ERROR_HEADER, ""),
        dead_lettered_at=raw.time,
        data=raw.data or b"",
    )


async def _open(bus: NatsBus) -> tuple[Client, JetStreamContext]:
    client = await connect(bus, "bastion-cli")
    js = client.jetstream(timeout=bus.publish_timeout_s)
    try:
        await ensure_streams(bus, js)
    except NatsError as error:
        await client.close()
        raise BusUnavailable(f"NATS JetStream did not answer: {error or type(error).__name__}") from error
    return client, js


async def _read(bus: NatsBus, js: JetStreamContext, consumer: str | None, event_id: str | None, limit: int) -> list[DeadLetter]:
    """Oldest first, at most `limit`, of one consumer or all."""
    invariant(1 <= limit <= DEAD_LETTERS_MAX, f"limit must be 1-{DEAD_LETTERS_MAX}")
    found: list[DeadLetter] = []
    sequence = 1
    for _ in range(DEAD_LETTERS_SCANNED_MAX):
        if len(found) >= limit:
            break
        try:
            raw = await js.get_msg(bus.dlq_stream, seq=sequence, subject=dlq_filter(bus, consumer), next=True)
        except NotFoundError:
            break
        letter = _dead_letter(raw)
        if event_id is None or letter.event_id == event_id:
            found.append(letter)
        sequence = letter.sequence + 1
    return found


async def list_dead_letters(bus: NatsBus, consumer: str | None = None, limit: int = 100) -> list[DeadLetter]:
    client, js = await _open(bus)
    try:
        return await _read(bus, js, consumer, None, limit)
    except NatsError as error:
        raise BusUnavailable(f"cannot read the dead letters: {error or type(error).__name__}") from error
    finally:
        await client.close()


async def redrive(bus: NatsBus, consumer: str | None = None, event_id: str | None = None, limit: int = 100) -> list[DeadLetter]:
    """Re-drive the oldest `limit` dead letters (of one consumer, of one event); returns those re-driven."""
    client, js = await _open(bus)
    redriven: list[DeadLetter] = []
    try:
        for letter in await _read(bus, js, consumer, event_id, limit):
            invariant(bool(letter.original_subject), f"dead letter {letter.sequence} names no original subject")
            await js.publish(
                letter.original_subject,
                letter.data,
                timeout=bus.publish_timeout_s,
                stream=bus.stream,
                headers={
                    MSG_ID_HEADER: f"{letter.event_id}.redrive.{letter.sequence}",
                    EVENT_ID_HEADER: letter.event_id,
                    EVENT_TYPE_HEADER: letter.event_type,
                },
            )
            await js.delete_msg(bus.dlq_stream, letter.sequence)
            redriven.append(letter)
    except NatsError as error:
        raise BusUnavailable(f"re-drive stopped after {len(redriven)}: {error or type(error).__name__}") from error
    finally:
        await client.close()
    return redriven
