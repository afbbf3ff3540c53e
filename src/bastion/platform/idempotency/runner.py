"""Commands in phases: the one way a command calls something outside Bastion (the vault, a
processor) without an open transaction and without doing it twice (Stripe's atomic phases;
docs/adr/0010-phased-commands.md).

1. Start, in one transaction: the command checks its request and decides everything the rest
   needs (ids included) as a JSON state; the idempotency key is recorded with it, at the
   recovery point `started`, held by this request (`locked_at`). Commit.
2. Call, with no transaction open. The call must be safe to repeat with the same state:
   a resumed command makes it again.
3. Finish, in one transaction: the outcome's writes, audit row and event, and the response
   stored on the key (`finished`). Commit.

A duplicate while the key is held gets `409 idempotency_key_in_use`. A command cut short
(process killed, connection lost) keeps its key at `started`: the client's retry with the
same key, or the API's janitor (`resume_abandoned`), takes it over once nobody holds it or
its holder has held it for `hold_timeout_s` (BASTION_IDEMPOTENCY_HOLD_TIMEOUT_S), and goes
on from the call with the stored state. A refusal from the outside (a 4xx-type error)
forgets the key, like a refused single-phase command, so that a retry runs afresh; an
unknown outcome (a timeout, an unreachable vault) leaves the key `started` and unheld, for
the retry or the janitor to finish.
"""

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from bastion.kernel.errors import BastionError, IdempotencyError, IdempotencyInFlight
from bastion.platform import failpoints
from bastion.platform.db import Actor, AnyRow, Database, Tenant, UnitOfWork
from bastion.platform.idempotency import repository

ABANDONED_BATCH_MAX = 100
# Set in the state a resumed command's call gets: an earlier run may have made the call already
# (a connector cannot tell, so a confirm does not fail over from what it may have sent).
RESUMED = "resumed"

State = dict[str, Any]
Outcome = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    """A finish's answer other than a 200: a refusal its command decided and recorded (a
    declined card is a 402 whose charge and intent are written), stored and replayed like any."""

    status_code: int
    body: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Phases:
    """What a command does once started, found by `name` when it is resumed: from its state
    alone, since a janitor has no request. `undo`, for a command whose start wrote more than
    its key, takes those writes back when the call is refused and the key forgotten."""

    name: str
    call: Callable[[Tenant, State], Awaitable[Outcome]]
    finish: Callable[[UnitOfWork, State, Outcome], Awaitable[Mapping[str, object] | Reply]]
    undo: Callable[[UnitOfWork, State], Awaitable[None]] | None = None

    def then(self, name: str, after: Callable[[UnitOfWork, State], Awaitable[Mapping[str, object]]]) -> "Phases":
        """This command under another name, whose finish goes on with `after` in the same
        transaction and answers what `after` answers (a refusal the finish recorded stays the
        answer): a review approved is a capture, then the review closed."""
        finish = self.finish

        async def finish_then(uow: UnitOfWork, state: State, outcome: Outcome) -> Mapping[str, object] | Reply:
            finished = await finish(uow, state, outcome)
            return finished if isinstance(finished, Reply) else await after(uow, state)

        return Phases(name=name, call=self.call, finish=finish_then, undo=self.undo)


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    body: bytes
    replayed: bool


class PhasedCommands:
    """Runs and resumes phased commands; `registry` names every command the janitor may resume.
    `hold_timeout_s` must be longer than any call's own deadline, so that a live holder is
    never taken over; a dead one's command waits that long for its retry or the janitor."""

    def __init__(self, database: Database, registry: dict[str, Phases], *, hold_timeout_s: float) -> None:
        self.database = database
        self.registry = registry
        self.hold_timeout_s = hold_timeout_s

    async def run(
        self,
        tenant: Tenant,
        actor: Actor,
        *,
        key: str,
        fingerprint: str,
        phases: Phases,
        start: Callable[[UnitOfWork], Awaitable[State]],
    ) -> Answer:
        held_at = self.database.clock.now()
        async with self.database.unit_of_work(tenant, actor) as uow:
            stored = await repository.stored(uow.connection, tenant, key)
            if stored is None:
                state = await start(uow)
                # The actor rides with the state: whoever finishes the command audits it as the caller's.
                recorded = {"actor": dataclasses.asdict(actor), "data": state}
                claimed = await repository.claim(
                    uow.connection, tenant, key=key, fingerprint=fingerprint, command=phases.name, state=recorded, at=held_at
                )
                if not claimed:
                    raise key_in_use()
            else:
                replayed = stored_answer(stored, fingerprint)
                if replayed is not None:
                    return replayed
                taken = await self._take_over(uow, stored, key, held_at)
                if taken is None:
                    raise key_in_use()
                actor, state = taken
        failpoints.reached("phased.started")
        return await self._call_and_finish(tenant, actor, state, key, phases)

    async def resume_abandoned(self, actor: Actor) -> int:
        """Finish commands that nobody holds or whose holder is gone, a batch at most; how many."""
        held_at = self.database.clock.now()
        async with self.database.transaction() as connection:
            keys = await repository.abandoned(
                connection, locked_before=held_at - timedelta(seconds=self.hold_timeout_s), count_max=ABANDONED_BATCH_MAX
            )
        finished = 0
        for row in keys:
            tenant = Tenant(merchant_id=row["merchant_id"], livemode=row["livemode"])
            async with self.database.unit_of_work(tenant, actor) as uow:
                stored = await repository.stored(uow.connection, tenant, row["key"])
                taken = None if stored is None else await self._take_over(uow, stored, row["key"], held_at)
            if stored is None or taken is None:
                continue  # finished or taken by a retry meanwhile
            try:
                await self._call_and_finish(tenant, *taken, row["key"], self.registry[stored["command"]])
            except BastionError:
                continue  # refused (the key is forgotten) or still unknown (the next round tries again)
            finished += 1
        return finished

    async def _take_over(self, uow: UnitOfWork, stored: AnyRow, key: str, held_at: datetime) -> tuple[Actor, State] | None:
        """The started command's caller and state, now held by us; None if someone holds it."""
        locked_at: datetime | None = stored["locked_at"]
        if locked_at is not None and locked_at > held_at - timedelta(seconds=self.hold_timeout_s):
            return None
        recorded = await repository.take_over(uow.connection, uow.tenant, key, locked_at=locked_at, at=held_at)
        return None if recorded is None else (Actor(**recorded["actor"]), recorded["data"] | {RESUMED: True})

    async def _call_and_finish(self, tenant: Tenant, actor: Actor, state: State, key: str, phases: Phases) -> Answer:
        try:
            outcome = await phases.call(tenant, state)
            failpoints.reached("phased.called")
            async with self.database.unit_of_work(tenant, actor) as uow:
                finished = await phases.finish(uow, state, outcome)
                status_code, document = (finished.status_code, finished.body) if isinstance(finished, Reply) else (200, finished)
                body = orjson.dumps(document)
                await repository.finish(uow.connection, tenant, key, status_code=status_code, response_body=body.decode())
        except BaseException as error:
            refused = isinstance(error, BastionError) and error.type != "api_error"
            async with self.database.unit_of_work(tenant, actor) as uow:
                if refused:
                    await repository.forget(uow.connection, tenant, key)
                    if phases.undo is not None:
                        await phases.undo(uow, state)
                else:
                    await repository.release(uow.connection, tenant, key)
            raise
        failpoints.reached("phased.finished")
        return Answer(status_code, body, replayed=False)


def stored_answer(stored: AnyRow, fingerprint: str) -> Answer | None:
    """The answer a key stored for this same request (Stripe's replay), None while its command
    has not finished; a key used for another request is an `idempotency_error`."""
    if stored["fingerprint"] != fingerprint:
        raise IdempotencyError(
            "Keys for idempotent requests can only be used with the same endpoint and parameters", param="Idempotency-Key"
        )
    if stored["recovery_point"] != "finished":
        return None
    return Answer(stored["status_code"], stored["response_body"].encode(), replayed=True)


def key_in_use() -> IdempotencyInFlight:
    return IdempotencyInFlight(
        "A request with this Idempotency-Key is still being processed; retry after it completes", param="Idempotency-Key"
    )
