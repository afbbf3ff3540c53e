"""The payments' janitor duties, run by each API process beside the finishing of abandoned
commands (it holds the connectors): authorizations not captured within the window are voided
and their intents canceled (`cancellation_reason: automatic`), and attempts whose answer was
unknown, or whose 3-D Secure outcome has not arrived, are asked about again (a sync). Each acts
through the same commands in phases as the API, under a key of its own, so that a janitor killed
halfway is finished like any command."""

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import orjson

from bastion.kernel.errors import BastionError
from bastion.kernel.ids import new_id
from bastion.payments import intents, repository
from bastion.payments.books import AUTHORIZATION_WINDOW
from bastion.payments.domain import IntentStatus
from bastion.platform.db import Actor, AnyRow, Connection, Tenant, UnitOfWork
from bastion.platform.idempotency import PhasedCommands, State
from bastion.platform.logging import get_logger

BATCH_MAX = 100
JANITOR_ACTOR = Actor(id="payments_janitor")
# An unknown answer is asked about again once it is this old, and then every round.
SYNC_AFTER = timedelta(seconds=30)
# A challenge's outcome comes as a notification; one still open this long is asked about, every
# round (the acquirer declines an unanswered challenge after 15 minutes).
CHALLENGE_SYNC_AFTER = timedelta(minutes=20)
_FINGERPRINT = "payments-janitor"
_WAITING = (IntentStatus.PROCESSING, IntentStatus.REQUIRES_ACTION)
_log = get_logger("bastion.payments")


async def _each(
    commands: PhasedCommands,
    find: Callable[[Connection, datetime, int], Awaitable[list[AnyRow]]],
    age: timedelta,
    *,
    name: str,
    key: Callable[[str], str],
    start: Callable[[str], Callable[[UnitOfWork], Awaitable[State]]],
) -> list[dict[str, Any]]:
    """Run the command `name` for each object `find` finds older than `age` (a batch at most), in
    its merchant's unit of work; the answers of those that ran. One refused (changed meanwhile, or
    being changed now) is left to the next round."""
    database = commands.database
    async with database.transaction() as connection:
        rows = await find(connection, database.clock.now() - age, BATCH_MAX)
    answers = []
    for row in rows:
        try:
            answer = await commands.run(
                Tenant(row["merchant_id"], row["livemode"]),
                JANITOR_ACTOR,
                key=key(row["id"]),
                fingerprint=_FINGERPRINT,
                phases=commands.registry[name],
                start=start(row["id"]),
            )
        except BastionError as refusal:
            _log.info("payments_janitor_skipped", command=name, object=row["id"], code=refusal.code)
            continue
        answers.append(orjson.loads(answer.body))
    return answers


async def cancel_stale_authorizations(commands: PhasedCommands, *, window: timedelta = AUTHORIZATION_WINDOW) -> int:
    """Cancel the intents authorized longer than `window` ago, a batch at most; how many."""
    canceled = await _each(
        commands,
        repository.stale_authorizations,
        window,
        name=intents.CANCEL,
        key=lambda intent_id: f"expire-{intent_id}",
        start=lambda intent_id: functools.partial(intents.start_cancel, intent_id=intent_id, reason="automatic"),
    )
    return len(canceled)


async def sync_unknown_attempts(commands: PhasedCommands, *, after: timedelta = SYNC_AFTER) -> int:
    """Ask the connector about attempts whose answer was unknown, a batch at most; how many it
    settled (a declined one answers with its card error)."""
    return await _sync(commands, repository.unknown_attempts, after)


async def sync_open_challenges(commands: PhasedCommands, *, after: timedelta = CHALLENGE_SYNC_AFTER) -> int:
    """Ask the connector about challenges open longer than `after`, a batch at most; how many it settled."""
    return await _sync(commands, repository.open_challenges, after)


async def _sync(
    commands: PhasedCommands, find: Callable[[Connection, datetime, int], Awaitable[list[AnyRow]]], after: timedelta
) -> int:
    answers = await _each(
        commands,
        find,
        after,
        name=intents.SYNC,
        # A key per round: each sync asks afresh.
        key=lambda charge_id: f"sync-{charge_id}-{new_id('req')}",
        start=lambda charge_id: functools.partial(intents.start_sync, charge_id=charge_id),
    )
    return sum(answer.get("status") not in _WAITING for answer in answers)


async def payments_janitor_forever(commands: PhasedCommands, interval_s: float) -> None:
    """Both duties every `interval_s`, until cancelled; a failed round is logged and retried."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            canceled = await cancel_stale_authorizations(commands)
            settled = await sync_unknown_attempts(commands) + await sync_open_challenges(commands)
            if canceled or settled:
                _log.info("payments_janitor_round", authorizations_canceled=canceled, attempts_settled=settled)
        except Exception:  # noqa: BLE001  (the next round tries again)
            _log.exception("payments_janitor_failed")
