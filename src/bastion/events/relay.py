"""The outbox relay: hands committed events to in-process subscribers, exactly one effect each.

Delivery is at least once: a batch is claimed in one transaction (T1, `FOR UPDATE SKIP
LOCKED`, so several relays can run side by side), each subscriber handles each event in
its own transaction that first claims the inbox row (subscriber, event id), and T1 marks
the batch published last. A crash in between redelivers the batch; the inbox row, which
commits together with the subscriber's effect, turns the redelivery into a no-op.

An event with a failing subscriber stays unpublished and is retried with backoff; after
`RetryPolicy.attempts_max` failures it is parked (skipped by this process, still
unpublished, retried after a restart). Nothing is lost and nothing is applied twice.
See docs/events.md.
"""

import asyncio
import contextlib
import copy
import importlib
import inspect
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import asyncpg

from bastion.events import repository
from bastion.events.resources import Event
from bastion.events.service import to_resource
from bastion.kernel.errors import ConfigurationError, InvariantViolated, invariant
from bastion.platform.db import AnyRow, Connection, Database
from bastion.platform.logging import get_logger

_log = get_logger(__name__)

CHANNEL = "bastion_outbox"
BATCH_SIZE_MAX = 100
BATCH_SIZE_LIMIT = 1_000
POLL_INTERVAL_S = 1.0
SUBSCRIBERS_MAX = 32
SUBSCRIBER_NAME_LENGTH_MAX = 64
LISTEN_CONNECT_TIMEOUT_S = 10.0
# A half-open TCP connection never reports itself lost: a ping finds it.
LISTEN_PING_INTERVAL_S = 5.0
LISTEN_PING_TIMEOUT_S = 5.0
LISTEN_RECONNECT_DELAY_MIN_S = 0.5
LISTEN_RECONNECT_DELAY_MAX_S = 30.0


@runtime_checkable
class EventSubscriber(Protocol):
    @property
    def name(self) -> str:
        """Stable and unique: the inbox is keyed by it, so renaming redelivers every unpublished event."""
        ...

    async def handle(self, connection: Connection, event: Event) -> None:
        """Apply the effect of `event` (the public event resource) on `connection`, the open
        transaction that holds this subscriber's inbox row: both commit or neither does."""
        ...


class BatchSubscriber(Protocol):
    """A subscriber that takes a batch's events in one transaction: a round trip per batch, not
    per event. If the batch fails, its events are handed over again one at a time, so that one
    event's failure holds back that event alone."""

    @property
    def name(self) -> str: ...

    async def handle_batch(self, connection: Connection, events: list[Event]) -> None:
        """Apply the effect of every one of `events` (in id order, each new to this subscriber)
        on `connection`, the transaction that holds their inbox rows."""
        ...


Subscriber = EventSubscriber | BatchSubscriber


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts_max: int = 8
    delay_first_s: float = 1.0
    delay_max_s: float = 60.0
    # Bounds this process's memory of failures; beyond it a failing event is retried every round.
    tracked_max: int = 1_000


@dataclass(slots=True)
class _Failure:
    attempts: int
    retry_at_s: float  # time.monotonic(); math.inf once parked


class DeliveryFailures:
    """When each event that failed delivery may be tried again, in this process only.

    In memory on purpose: the worker role may change nothing on an event but
    `published_at`, and a restart that forgets the counts gives parked events a new try.
    """

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        self.policy = policy if policy is not None else RetryPolicy()
        self._failures: dict[str, _Failure] = {}

    def held_back(self) -> list[str]:
        now_s = time.monotonic()
        return [event_id for event_id, failure in self._failures.items() if failure.retry_at_s > now_s]

    def failed(self, event_id: str) -> None:
        failure = self._failures.get(event_id)
        if failure is None:
            if len(self._failures) >= self.policy.tracked_max:
                _log.error("outbox_failure_untracked", event_id=event_id, tracked_max=self.policy.tracked_max)
                return
            failure = self._failures[event_id] = _Failure(attempts=0, retry_at_s=0.0)
        failure.attempts += 1
        if failure.attempts >= self.policy.attempts_max:
            failure.retry_at_s = math.inf
            _log.error("outbox_event_parked", event_id=event_id, attempts=failure.attempts)
            return
        delay_s = min(self.policy.delay_first_s * 2 ** (failure.attempts - 1), self.policy.delay_max_s)
        failure.retry_at_s = time.monotonic() + delay_s

    def succeeded(self, event_id: str) -> None:
        self._failures.pop(event_id, None)


def _check_names(subscribers: Sequence[Subscriber]) -> None:
    names = [subscriber.name for subscriber in subscribers]
    invariant(len(names) <= SUBSCRIBERS_MAX, f"at most {SUBSCRIBERS_MAX} subscribers")
    invariant(len(set(names)) == len(names), f"subscriber names must be unique: {names}")
    invariant(all(0 < len(name) <= SUBSCRIBER_NAME_LENGTH_MAX for name in names), "subscriber names must be 1-64 characters")


async def _hand_over(connection: Connection, subscriber: Subscriber, rows: Sequence[AnyRow]) -> None:
    """Give `subscriber` those of `rows` it has not handled yet, in the transaction that claims
    their inbox rows."""
    new = set(await repository.claim_inbox(connection, subscriber.name, [row["id"] for row in rows]))
    # A copy each: one subscriber's mutation must not leak into the next one's event.
    fresh = [copy.deepcopy(to_resource(row)) for row in rows if row["id"] in new]
    if fresh:
        await apply_events(connection, subscriber, fresh)


async def apply_events(connection: Connection, subscriber: Subscriber, events: list[Event]) -> None:
    """Apply the effects of `events`, whichever way `subscriber` takes them: a batch at once, or
    one event at a time."""
    if isinstance(subscriber, EventSubscriber):
        for event in events:
            await subscriber.handle(connection, event)
    else:
        await subscriber.handle_batch(connection, events)


async def _deliver(database: Database, subscriber: Subscriber, rows: Sequence[AnyRow]) -> bool:
    """Hand `rows` to `subscriber` in one transaction; False if it failed (nothing of it kept)."""
    try:
        async with database.transaction() as connection:
            await _hand_over(connection, subscriber, rows)
    except Exception:  # noqa: BLE001  (one subscriber's failure must not stop the others; the events are retried)
        _log.exception(
            "outbox_delivery_failed", subscriber=subscriber.name, event_ids=[row["id"] for row in rows][:10], events=len(rows)
        )
        return False
    return True


async def _failed_deliveries(database: Database, subscribers: Sequence[Subscriber], rows: Sequence[AnyRow]) -> set[str]:
    """Hand `rows` to every subscriber (a batch subscriber all at once, and one at a time only if
    that fails); the ids of the events some subscriber failed."""
    failed: set[str] = set()
    for subscriber in subscribers:
        if not isinstance(subscriber, EventSubscriber) and len(rows) > 1 and await _deliver(database, subscriber, rows):
            continue
        for row in rows:
            if not await _deliver(database, subscriber, [row]):
                failed.add(row["id"])
    return failed


async def publish_pending(
    database: Database,
    subscribers: Sequence[Subscriber],
    batch_size_max: int = BATCH_SIZE_MAX,
    failures: DeliveryFailures | None = None,
) -> int:
    """Deliver one batch of unpublished events in id order; returns how many were published.

    `database` must connect as the worker role and allow two connections: the claiming
    transaction stays open while each delivery commits on its own. `failures` carries
    retry backoff across calls; without it a failed event is retried on the next call.
    """
    invariant(1 <= batch_size_max <= BATCH_SIZE_LIMIT, f"batch_size_max must be 1-{BATCH_SIZE_LIMIT}")
    _check_names(subscribers)
    tracker = failures if failures is not None else DeliveryFailures()
    published: list[str] = []
    async with database.transaction() as claim:
        rows = await repository.claim_unpublished(claim, batch_size_max, skip_event_ids=tracker.held_back())
        failed = await _failed_deliveries(database, subscribers, rows)
        for row in rows:
            if row["id"] in failed:
                tracker.failed(row["id"])
            else:
                tracker.succeeded(row["id"])
                published.append(row["id"])
        if published:
            await repository.mark_published(claim, published, database.clock.now())
    return len(published)


def load_subscribers(paths: Sequence[str]) -> list[Subscriber]:
    """Import `module:attribute` paths (BASTION_SUBSCRIBERS); any problem is one ConfigurationError line."""
    if len(paths) > SUBSCRIBERS_MAX:
        raise ConfigurationError(f"BASTION_SUBSCRIBERS: at most {SUBSCRIBERS_MAX} subscribers, got {len(paths)}")
    loaded: list[Subscriber] = []
    for path in paths:
        module_name, _, attribute = path.partition(":")
        if not module_name or not attribute:
            raise ConfigurationError(f"BASTION_SUBSCRIBERS: {path!r} is not of the form module:attribute")
        try:
            subscriber = getattr(importlib.import_module(module_name), attribute)
        except Exception as error:  # any import failure is a configuration error, said in one line
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ConfigurationError(f"BASTION_SUBSCRIBERS: cannot load {path!r}: {reason}") from error
        name = getattr(subscriber, "name", None)
        handles = any(inspect.iscoroutinefunction(getattr(subscriber, method, None)) for method in ("handle", "handle_batch"))
        if not isinstance(name, str) or not handles:
            raise ConfigurationError(
                f"BASTION_SUBSCRIBERS: {path!r} has no str `name` and async `handle(connection, event)` "
                "or `handle_batch(connection, events)`"
            )
        loaded.append(subscriber)
    try:
        _check_names(loaded)
    except InvariantViolated as error:
        raise ConfigurationError(f"BASTION_SUBSCRIBERS: {error}") from error
    return loaded


async def _set_when(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


async def wake_on_notify(dsn: str, channel: str, wake: asyncio.Event, *, name: str) -> None:
    """Set `wake` at each NOTIFY on `channel`, and once each time the connection is made, until
    cancelled: a LISTEN connection of its own (`bastion-<name>` in pg_stat_activity), reconnected
    with bounded backoff."""
    delay_s = LISTEN_RECONNECT_DELAY_MIN_S
    while True:
        listening = False
        connection: Any = None
        try:
            connection = await asyncpg.connect(
                dsn, timeout=LISTEN_CONNECT_TIMEOUT_S, server_settings={"application_name": f"bastion-{name}"}
            )
            await connection.add_listener(channel, lambda *_: wake.set())
            listening = True
            # Events committed while no one was listening got no wake-up of their own.
            wake.set()
            while True:
                await asyncio.sleep(LISTEN_PING_INTERVAL_S)
                await connection.fetchval("SELECT 1", timeout=LISTEN_PING_TIMEOUT_S)
        except Exception:  # noqa: BLE001  (the caller's poll covers for the listener while it reconnects)
            _log.warning("listener_failed", channel=channel, exc_info=True, retry_in_s=delay_s)
        finally:
            if connection is not None:
                connection.terminate()
        delay_s = LISTEN_RECONNECT_DELAY_MIN_S if listening else min(delay_s * 2, LISTEN_RECONNECT_DELAY_MAX_S)
        await asyncio.sleep(delay_s)


async def _drain(
    database: Database, subscribers: Sequence[Subscriber], batch_size_max: int, failures: DeliveryFailures, stop: asyncio.Event
) -> None:
    # A full batch means more may be waiting.
    while not stop.is_set() and await publish_pending(database, subscribers, batch_size_max, failures) == batch_size_max:
        continue


async def run_relay(
    database: Database,
    listen_dsn: str,
    subscribers: Sequence[Subscriber],
    stop: asyncio.Event,
    *,
    batch_size_max: int = BATCH_SIZE_MAX,
    poll_interval_s: float = POLL_INTERVAL_S,
) -> None:
    """Publish until `stop` is set: woken at once by each commit's NOTIFY, polling as a fallback.

    `listen_dsn` is a plain postgresql:// DSN of the worker role for the dedicated
    LISTEN connection (the worker's grant, `bastion.platform.grant`).
    """
    _check_names(subscribers)
    failures = DeliveryFailures()
    wake = asyncio.Event()
    helpers = [
        asyncio.create_task(wake_on_notify(listen_dsn, CHANNEL, wake, name="relay")),
        asyncio.create_task(_set_when(stop, wake)),
    ]
    _log.info("outbox_relay_started", subscribers=[subscriber.name for subscriber in subscribers])
    try:
        while not stop.is_set():
            wake.clear()
            try:
                await _drain(database, subscribers, batch_size_max, failures, stop)
            except Exception:  # noqa: BLE001  (a failed round, e.g. the database restarting, is retried at the next wake)
                _log.exception("outbox_relay_round_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=poll_interval_s)
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
