"""The posting engine. Every write goes the same way, for one entry or 8,000: reject what
is wrong on its face, answer replays of known references, lock every balance the entries
touch in (account, stripe) order, compute the new balances and check the account limits
(the rules are in `domain`), then write entries, postings, holds and balances in one
statement. The database checks the same rules again (constraints, and a deferred trigger
that rejects an unbalanced entry at commit)."""

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Literal

import asyncpg

from bastion.kernel.errors import BastionError, invariant
from bastion.ledger import repository
from bastion.ledger.accounts import allow_platform_accounts
from bastion.ledger.domain import (
    BATCH_ENTRIES_MAX,
    EntryDraft,
    EntryKind,
    Plan,
    check_draft,
    currency_totals,
    evaluate,
    first_difference,
    new_plan,
    rejection,
    release_plan,
)
from bastion.ledger.entries import entry_resource, stored_draft, stored_entry
from bastion.ledger.errors import (
    EntryAlreadyReversed,
    LedgerRejected,
    LimitExceeded,
    ReferenceDuplicated,
    ReferenceInFlight,
    ReferenceReused,
)
from bastion.ledger.resources import Entry
from bastion.platform.db import AnyRow, UnitOfWork

_STRIPE_SEED_MAX = 2**30


@dataclass(frozen=True, slots=True)
class EntryResult:
    index: int
    result: Literal["created", "exists"]
    entry_id: str
    # The entry resource, built on demand: a batch of 8,000 answers with ids only.
    render: Callable[[], Entry]

    @property
    def entry(self) -> Entry:
        return self.render()


async def post_entries(
    uow: UnitOfWork,
    drafts: Sequence[EntryDraft],
    *,
    platform: bool = False,
    as_batch: bool = True,
    new_references: bool = False,
) -> list[EntryResult]:
    """Post `drafts` atomically inside the caller's unit of work: all are written, or
    none and `BatchRejected` says why (with `as_batch=False`, a single draft's own
    `LedgerRejected`, whose param names the field of the entry itself).

    A draft whose reference is already in the journal with the same content is not
    written again: its result is "exists". With `platform`, postings may also reach
    the platform's accounts (a fee account); the HTTP API never sets it. With
    `new_references`, the caller vouches that no draft's reference is in the journal yet (it
    posts each once, under a lock of its own): the look-up for replays is skipped, and a
    reference used after all is refused by its unique index."""
    invariant(0 < len(drafts) <= BATCH_ENTRIES_MAX, "a batch holds 1 to BATCH_ENTRIES_MAX entries")
    moment = uow.now()
    failures: dict[int, LedgerRejected] = {}
    for index, draft in enumerate(drafts):
        try:
            check_draft(draft, moment)
        except LedgerRejected as error:
            failures[index] = error
    results: dict[int, EntryResult] = {}
    if not new_references:
        await _answer_replays(uow, drafts, results, failures, moment)
    indexed = [
        (index, new_plan(draft, moment)) for index, draft in enumerate(drafts) if index not in failures and index not in results
    ]
    await write_plans(uow, indexed, failures, moment, platform=platform, as_batch=as_batch)
    livemode = uow.tenant.livemode
    for index, plan in indexed:
        render = partial(entry_resource, plan, created_at=moment, livemode=livemode, moment=moment)
        results[index] = EntryResult(index, "created", plan.entry_id, render)
    return [results[index] for index in range(len(drafts))]


async def post_entry(uow: UnitOfWork, draft: EntryDraft, *, platform: bool = False, new_references: bool = False) -> Entry:
    """One entry; see `post_entries`."""
    return (await post_entries(uow, [draft], platform=platform, as_batch=False, new_references=new_references))[0].entry


async def _answer_replays(
    uow: UnitOfWork,
    drafts: Sequence[EntryDraft],
    results: dict[int, EntryResult],
    failures: dict[int, LedgerRejected],
    moment: datetime,
) -> None:
    """Results for drafts whose reference is known: "exists" when the content matches,
    a rejection naming the first field that differs otherwise."""
    first_use: dict[str, int] = {}
    for index, draft in enumerate(drafts):
        if draft.reference is None or index in failures:
            continue
        if draft.reference in first_use:
            failures[index] = ReferenceDuplicated(
                f"The reference {draft.reference!r} is also used by entry {first_use[draft.reference]} of this batch",
                param="reference",
            )
        else:
            first_use[draft.reference] = index
    if not first_use:
        return
    rows = await repository.entries_by_reference(uow.connection, uow.tenant, list(first_use))
    if not rows:
        return
    postings_by_entry: dict[str, list[AnyRow]] = {}
    for posting in await repository.postings_of(uow.connection, uow.tenant, [row["id"] for row in rows]):
        postings_by_entry.setdefault(posting["entry_id"], []).append(posting)
    for row in rows:
        index = first_use[row["reference"]]
        postings = postings_by_entry.get(row["id"], [])
        difference = first_difference(stored_draft(row, postings), drafts[index])
        if difference is None:
            results[index] = EntryResult(index, "exists", row["id"], partial(stored_entry, row, postings, moment))
        else:
            failures[index] = ReferenceReused(
                f"The reference {row['reference']!r} was already used for entry {row['id']} with a different {difference}",
                param=difference,
            )


async def write_plans(
    uow: UnitOfWork,
    indexed: Sequence[tuple[int, Plan]],
    failures: dict[int, LedgerRejected],
    moment: datetime,
    *,
    platform: bool,
    as_batch: bool = False,
) -> None:
    """Lock, check every plan against the balances as the plans before it left them,
    and write them all, or raise with every rejection."""
    if not indexed:
        if failures:
            raise rejection(failures, as_batch=as_batch)
        return
    if platform:
        await allow_platform_accounts(uow)
    seed = random.randrange(_STRIPE_SEED_MAX)  # noqa: S311  (spreads writers over stripes; not a secret)
    targets = {(p.account_id, stripe) for _, plan in indexed for p, stripe in zip(plan.draft.postings, plan.stripes, strict=True)}
    targets |= {(account_id, stripe) for _, plan in indexed for account_id, stripe, _ in plan.releases}
    rows = await repository.lock_balances(uow.connection, uow.tenant, list(targets), stripe_seed=seed, platform=platform)
    accounts = {row["account_id"]: repository.locked_account(row) for row in rows}
    locked = {(row["account_id"], row["stripe"]): repository.counters_of(row) for row in rows}
    balances, refused = evaluate(indexed, accounts, locked, seed)
    limited = {
        posting.account_id
        for at, plan in indexed
        if isinstance(refused.get(at), LimitExceeded)
        for posting in plan.draft.postings
    }
    if limited:
        # Holds past their expiry that the job has not released yet would refuse
        # funds a read already shows as available: release them here, if that needs no wait.
        expiries, more_rows = await _release_due_holds(uow, limited, set(locked), moment)
        if expiries:
            indexed = [*((-1 - n, plan) for n, plan in enumerate(expiries)), *indexed]
            accounts |= {row["account_id"]: repository.locked_account(row) for row in more_rows}
            locked |= {(row["account_id"], row["stripe"]): repository.counters_of(row) for row in more_rows}
            balances, refused = evaluate(indexed, accounts, locked, seed)
            invariant(all(index >= 0 for index in refused), "releasing a hold never breaks a rule")
    failures.update(refused)
    if failures:
        raise rejection(failures, as_batch=as_batch)
    changed = {key: balances[key] for key in locked}
    # The rules once more, on exactly what is about to be written; the database checks them a third time.
    for _, plan in indexed:
        invariant(not any(currency_totals(plan.draft.postings).values()), f"entry {plan.entry_id} balances per currency")
    for key, counters in changed.items():
        invariant(counters.fits(), f"balance {key} within 0..2^63-1")
        invariant(accounts[key[0]].limits.breach(counters) is None, f"balance {key} within its account's limit")
    try:
        await repository.write_journal(
            uow.connection,
            uow.tenant,
            plans=[plan for _, plan in indexed],
            balances=changed,
            accounts=accounts,
            seed=seed,
            created_at=moment,
            actor=uow.actor.id,
            request_id=uow.actor.request_id,
        )
    except asyncpg.UniqueViolationError as error:
        answer = _unique_violation(error)
        if answer is None:
            raise
        raise answer from None


async def _release_due_holds(
    uow: UnitOfWork, accounts: set[str], locked: set[tuple[str, int]], moment: datetime
) -> tuple[list[Plan], list[AnyRow]]:
    """Expiry plans for due holds on `accounts`, and the extra balance rows they lock.

    Nothing here waits: a balance row or an open hold that another transaction holds is
    skipped (SKIP LOCKED), so taking these locks out of order cannot deadlock; a hold
    skipped here is left to the expiry job."""
    postings: dict[str, list[AnyRow]] = {}
    for posting in await repository.due_hold_postings(uow.connection, uow.tenant, list(accounts), moment):
        postings.setdefault(posting["entry_id"], []).append(posting)
    plans: list[Plan] = []
    more_rows: list[AnyRow] = []
    for hold_id, hold_postings in postings.items():
        missing = {(p["account_id"], p["stripe"]) for p in hold_postings} - locked
        if missing:
            got = await repository.try_lock_balances(uow.connection, sorted(missing))
            more_rows += got
            locked |= {(row["account_id"], row["stripe"]) for row in got}
            if len(got) < len(missing):
                continue
        if not await repository.try_take_due_hold(uow.connection, uow.tenant, hold_id, moment):
            continue
        held = [repository.held_posting(p) for p in hold_postings]
        plans.append(release_plan(EntryKind.EXPIRE_PENDING, hold_id, held, moment))
    return plans, more_rows


def _unique_violation(error: asyncpg.UniqueViolationError) -> BastionError | None:
    """Our answer to a race the unique indexes settled, or None for any other violation."""
    constraint = str(error.constraint_name or "")
    if constraint.endswith("_reference"):
        return ReferenceInFlight(
            "Another request wrote an entry with this reference at the same moment; retry to get that entry",
            param="reference",
        )
    if constraint.endswith("_reverses_entry_id"):
        return EntryAlreadyReversed("This entry was reversed by a concurrent request", param="id")
    return None
