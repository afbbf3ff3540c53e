"""Expiry of stored idempotency responses, run by the worker."""

from datetime import timedelta

from bastion.api import repository
from bastion.kernel.clock import now
from bastion.platform.db import Database

DELETE_BATCH_MAX = 1_000


async def expire_idempotency_keys(database: Database, ttl_s: int) -> int:
    """Delete responses older than the TTL, one bounded batch per transaction."""
    deleted_total = 0
    while True:
        async with database.transaction() as connection:
            deleted = await repository.delete_expired(connection, now() - timedelta(seconds=ttl_s), DELETE_BATCH_MAX)
        deleted_total += deleted
        if deleted < DELETE_BATCH_MAX:
            return deleted_total
