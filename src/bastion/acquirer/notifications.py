"""How the acquirer tells Bastion what changed: each notification recorded with its change is
POSTed to Bastion, signed (`Acquirer-Signature: t=...,v1=...`, HMAC-SHA256 over `t.body`), until
Bastion answers 2xx; a failure is tried again later, with a growing delay, up to a bound."""

from datetime import timedelta

import httpx
import orjson

from bastion.acquirer import repository
from bastion.acquirer.service import Acquirer
from bastion.platform.db import AnyRow
from bastion.platform.logging import get_logger
from bastion.platform.signatures import sign

SIGNATURE_HEADER = "Acquirer-Signature"
# A notification is sent at most this often; then it is kept, undelivered, for an operator.
ATTEMPTS_MAX = 12
BATCH_MAX = 50
# How long Bastion may take to answer one notification.
NOTIFICATION_TIMEOUT_S = 5.0
DELAY_MAX = timedelta(minutes=10)
# A claimed notification is not claimed again before this (its delivery has a shorter timeout).
_LEASE = timedelta(seconds=30)
_log = get_logger("bastion.acquirer")


def retry_delay(attempts: int) -> timedelta:
    """1 s after the first failure, doubling, at most `DELAY_MAX`."""
    return min(timedelta(seconds=2 ** (attempts - 1)), DELAY_MAX)


async def deliver_due(acquirer: Acquirer) -> int:
    """Send every notification that is due, oldest first, a batch at most; how many Bastion took."""
    if acquirer.notify_url is None:
        return 0
    clock = acquirer.database.clock
    async with acquirer.database.transaction() as connection:
        now = clock.now()
        rows = await repository.claim_due_notifications(
            connection, now, lease_until=now + _LEASE, attempts_max=ATTEMPTS_MAX, limit=BATCH_MAX
        )
    delivered = 0
    for row in rows:
        error = await _send(acquirer, acquirer.notify_url, row)
        async with acquirer.database.transaction() as connection:
            if error is None:
                await repository.notification_delivered(connection, row["id"], clock.now())
                delivered += 1
            else:
                retry_at = clock.now() + retry_delay(row["attempts"])
                await repository.notification_not_delivered(connection, row["id"], retry_at, error)
                _log.info("notification_not_delivered", notification=row["id"], attempts=row["attempts"], error=error)
    return delivered


async def _send(acquirer: Acquirer, url: str, row: AnyRow) -> str | None:
    """None if Bastion took it, else why not."""
    body = orjson.dumps(row["body"])
    timestamp = int(acquirer.database.clock.now().timestamp())
    headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(acquirer.notification_secret, body, timestamp)}
    try:
        answer = await acquirer.client.post(url, content=body, headers=headers)
    except httpx.HTTPError as failure:
        return type(failure).__name__
    if answer.is_success:
        return None
    return f"HTTP {answer.status_code}"
