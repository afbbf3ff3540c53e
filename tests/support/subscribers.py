"""Outbox subscribers for tests. Each records one row per handled event in `relay_effects`,
a table without a unique constraint, so that a second effect of one event would show.

The worker subprocess of tests/reliability loads `effect_recorder` via BASTION_SUBSCRIBERS.
"""

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def create_effects_table(connection: AsyncConnection, worker_role: str) -> None:
    """As the owner: the table the subscribers write to, writable by the worker role."""
    await connection.execute(text("CREATE TABLE IF NOT EXISTS relay_effects (subscriber text NOT NULL, event_id text NOT NULL)"))
    # DDL cannot take bind parameters; the role name comes from the test's own ServiceRoles.
    await connection.execute(text(f'GRANT SELECT, INSERT ON relay_effects TO "{worker_role}"'))


async def effect_counts(connection: AsyncConnection, subscriber: str) -> dict[str, int]:
    """Event id -> how many effects `subscriber` applied for it."""
    rows = await connection.execute(
        text("SELECT event_id, count(*) FROM relay_effects WHERE subscriber = :subscriber GROUP BY event_id"),
        {"subscriber": subscriber},
    )
    return {str(event_id): int(count) for event_id, count in rows.all()}


@dataclass(frozen=True)
class EffectRecorder:
    name: str
    # Slows each event down so that a batch takes long enough to be killed in the middle.
    delay_s: float = 0.0

    async def handle(self, connection: AsyncConnection, event: dict[str, Any]) -> None:
        await connection.execute(
            text("INSERT INTO relay_effects (subscriber, event_id) VALUES (:subscriber, :event_id)"),
            {"subscriber": self.name, "event_id": event["id"]},
        )
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)


effect_recorder = EffectRecorder(name="effect_recorder", delay_s=0.02)
