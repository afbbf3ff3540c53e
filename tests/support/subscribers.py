"""Outbox subscribers for tests. Each records one row per handled event in `relay_effects`,
a table without a unique constraint, so that a second effect of one event would show.

The worker subprocess of tests/events/test_relay_kill.py loads `effect_recorder` via BASTION_SUBSCRIBERS.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bastion.events import Subscriber, publish_pending
from bastion.platform.db import Connection, Database

DRAIN_ROUNDS_MAX = 1_000

_CREATE_EFFECTS_TABLE = "CREATE TABLE IF NOT EXISTS relay_effects (subscriber text NOT NULL, event_id text NOT NULL)"
_EFFECT_COUNTS = "SELECT event_id, count(*) FROM relay_effects WHERE subscriber = $1 GROUP BY event_id"
_INSERT_EFFECT = "INSERT INTO relay_effects (subscriber, event_id) VALUES ($1, $2)"


async def drain(database: Database, subscribers: Sequence[Subscriber]) -> None:
    """Publish everything that can be published now, other tests' events included."""
    for _ in range(DRAIN_ROUNDS_MAX):
        if await publish_pending(database, subscribers) == 0:
            return
    raise AssertionError(f"the outbox did not drain in {DRAIN_ROUNDS_MAX} rounds")


async def create_effects_table(connection: Connection, worker_role: str) -> None:
    """As the owner: the table the subscribers write to, writable by the worker role."""
    await connection.execute(_CREATE_EFFECTS_TABLE)
    # DDL cannot take bind parameters; the role name comes from the test's own ServiceRoles.
    await connection.execute(f'GRANT SELECT, INSERT ON relay_effects TO "{worker_role}"')


async def effect_counts(connection: Connection, subscriber: str) -> dict[str, int]:
    """Event id -> how many effects `subscriber` applied for it."""
    rows = await connection.fetch(_EFFECT_COUNTS, subscriber)
    return {str(event_id): int(count) for event_id, count in rows}


@dataclass(frozen=True)
class EffectRecorder:
    name: str
    # Slows each event down so that a batch takes long enough to be killed in the middle.
    delay_s: float = 0.0

    async def handle(self, connection: Connection, event: dict[str, Any]) -> None:
        await connection.execute(_INSERT_EFFECT, self.name, event["id"])
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)


effect_recorder = EffectRecorder(name="effect_recorder", delay_s=0.02)
