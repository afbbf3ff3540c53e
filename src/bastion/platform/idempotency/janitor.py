"""The two janitors of idempotency keys: expiry of stored responses (run by the worker), and
the finishing of phased commands cut short (run by each API process, which holds what the
commands call: the vault client)."""

import asyncio
from datetime import timedelta

from bastion.platform.db import Actor, Database
from bastion.platform.idempotency import repository
from bastion.platform.idempotency.runner import PhasedCommands
from bastion.platform.logging import get_logger

DELETE_BATCH_MAX = 1_000
# Reads the abandoned keys; each resumed command keeps the caller it recorded.
JANITOR_ACTOR = Actor(id="idempotency_janitor")

_log = get_logger("bastion.idempotency")


async def expire_idempotency_keys(database: Database, ttl_s: int) -> int:
    """Delete responses older than the TTL, one bounded batch per transaction."""
    deleted_total = 0
    while True:
        async with database.transaction() as connection:
            expired_before = database.clock.now() - timedelta(seconds=ttl_s)
            deleted = await repository.delete_expired(connection, expired_before, DELETE_BATCH_MAX)
        deleted_total += deleted
        if deleted < DELETE_BATCH_MAX:
            return deleted_total


async def resume_abandoned_forever(commands: PhasedCommands, interval_s: float) -> None:
    """Finish abandoned commands every `interval_s`, until cancelled. The first round waits too:
    a client retrying right after a restart is answered by its own retry."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            finished = await commands.resume_abandoned(JANITOR_ACTOR)
            if finished:
                _log.info("phased_commands_resumed", count=finished)
        except Exception:  # noqa: BLE001  (a failed round is logged; the next one tries again)
            _log.exception("phased_commands_resume_failed")
