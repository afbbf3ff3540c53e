"""Holds and reversals: posting, voiding and expiring a hold, reversing an entry, and the
expiry job. Each writes one entry derived from the journal, through the posting engine."""

from bastion.ledger import repository
from bastion.ledger.domain import (
    EntryDraft,
    EntryKind,
    Plan,
    already_resolved,
    check_draft,
    new_plan,
    resolution_plan,
    reversal_plan,
)
from bastion.ledger.entries import entry_resource, entry_row, stored_draft
from bastion.ledger.errors import EntryNotPending, LedgerRejected, PlatformEntry
from bastion.ledger.posting import write_plans
from bastion.ledger.resources import Entry
from bastion.platform.db import Actor, Database, Tenant, UnitOfWork

EXPIRY_BATCH_MAX = 1_000


async def _hold_plan(uow: UnitOfWork, hold_id: str, kind: EntryKind, amount_minor: int | None) -> Plan:
    hold = await entry_row(uow, hold_id)
    if hold["kind"] != EntryKind.PENDING:
        raise EntryNotPending(f"The entry '{hold_id}' is not a hold", param="id")
    taken = await repository.take_open_hold(uow.connection, uow.tenant, hold_id)
    if taken is None:
        current = await repository.get_entry(uow.connection, uow.tenant, hold_id)
        resolution = current["resolution"] if current is not None else None
        raise already_resolved(hold_id, EntryKind(resolution) if resolution is not None else None)
    moment = uow.now()
    postings = await repository.postings_of(uow.connection, uow.tenant, [hold_id])
    return resolution_plan(
        kind,
        hold_id,
        [repository.held_posting(p) for p in postings],
        stored_draft(hold, postings).fx,
        expired=taken["expires_at"] <= moment,
        amount_minor=amount_minor,
        moment=moment,
    )


async def _resolve(uow: UnitOfWork, plan: Plan, *, platform: bool, with_plans: tuple[Plan, ...] = ()) -> Entry:
    """Write an entry derived from the journal: its accounts were checked when the entry it
    derives from was posted. One that moves the platform's accounts is written only with
    `platform` (a context's own resolution, or the expiry job), never for the merchant's API.
    `with_plans` are written with it, in one step."""
    accounts = {p.account_id for p in plan.draft.postings} | {account_id for account_id, _, _ in plan.releases}
    accounts |= {p.account_id for extra in with_plans for p in extra.draft.postings}
    if not platform and await repository.foreign_accounts(uow.connection, uow.tenant, sorted(accounts)):
        target = plan.pending_entry_id or plan.reverses_entry_id
        raise PlatformEntry(
            f"The entry '{target}' moves the platform's accounts: it is not resolved or reversed here", param="id"
        )
    indexed = [(0, plan), *((index, extra) for index, extra in enumerate(with_plans, start=1))]
    await write_plans(uow, indexed, {}, plan.effective_at, platform=True)
    return entry_resource(plan, created_at=plan.effective_at, livemode=uow.tenant.livemode, moment=plan.effective_at)


async def post_pending(
    uow: UnitOfWork,
    hold_id: str,
    amount_minor: int | None = None,
    *,
    platform: bool = False,
    with_entry: EntryDraft | None = None,
) -> Entry:
    """Post a hold, in full or for a smaller amount; the rest of the reservation is released.
    With `platform`, also a hold on the platform's accounts (see `_resolve`). With `with_entry`,
    that entry too, in the same step: every balance both touch is locked at once, in one order,
    so that a context's capture and its fee never lock in two rounds, which two captures at
    once could take in opposite orders (a deadlock)."""
    plan = await _hold_plan(uow, hold_id, EntryKind.POST_PENDING, amount_minor)
    extra: tuple[Plan, ...] = ()
    if with_entry is not None:
        check_draft(with_entry, plan.effective_at)
        extra = (new_plan(with_entry, plan.effective_at),)
    return await _resolve(uow, plan, platform=platform, with_plans=extra)


async def void_pending(uow: UnitOfWork, hold_id: str, *, platform: bool = False) -> Entry:
    return await _resolve(uow, await _hold_plan(uow, hold_id, EntryKind.VOID_PENDING, None), platform=platform)


async def reverse_entry(uow: UnitOfWork, entry_id: str, description: str | None = None, *, platform: bool = False) -> Entry:
    """A new entry with every posting mirrored; the original stays as it was."""
    row = await entry_row(uow, entry_id)
    original = stored_draft(row, await repository.postings_of(uow.connection, uow.tenant, [entry_id]))
    kind = EntryKind(row["kind"])
    plan = reversal_plan(entry_id, kind, original, reversed_by=row["reversed_by"], description=description, moment=uow.now())
    return await _resolve(uow, plan, platform=platform)


async def expire_hold(uow: UnitOfWork, hold_id: str) -> Entry:
    """Release a hold past its expiry (the expiry job's step, one hold per transaction): the
    platform's holds too, since a hold expires whoever wrote it."""
    return await _resolve(uow, await _hold_plan(uow, hold_id, EntryKind.EXPIRE_PENDING, None), platform=True)


async def expire_due_holds(database: Database, *, limit: int = EXPIRY_BATCH_MAX) -> int:
    """The expiry job: release up to `limit` holds past their expiry, one transaction
    each; a hold posted or voided meanwhile is skipped. Returns how many expired."""
    async with database.connection() as connection:
        due = await repository.due_holds(connection, database.clock.now(), limit)
    expired = 0
    for hold in due:
        tenant = Tenant(merchant_id=hold["merchant_id"], livemode=hold["livemode"])
        try:
            async with database.unit_of_work(tenant, Actor(id="ledger.expiry")) as uow:
                await expire_hold(uow, hold["entry_id"])
        except LedgerRejected:
            continue
        expired += 1
    return expired
