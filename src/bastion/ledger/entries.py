"""Entries as the API shows them: built from the journal's rows or from a plan just written."""

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from bastion.kernel.clock import unix_seconds, unix_seconds_or_none
from bastion.kernel.errors import ResourceMissing
from bastion.kernel.ids import is_id
from bastion.ledger import repository
from bastion.ledger.domain import RESOLUTIONS, EntryDraft, EntryKind, FxQuote, Plan, PostingDraft
from bastion.ledger.resources import Entry, EntryList, EntryStatus, Fx, Posting
from bastion.platform.db import AnyRow, UnitOfWork
from bastion.platform.pagination import PageRequest, check_cursors


def _posting_resource(posting: PostingDraft) -> Posting:
    return Posting(
        account=posting.account_id, direction=posting.direction, amount_minor=posting.amount_minor, currency=posting.currency
    )


def _fx_resource(fx: FxQuote | None) -> Fx | None:
    if fx is None:
        return None
    return Fx(
        from_currency=fx.from_currency,
        to_currency=fx.to_currency,
        rate=str(fx.rate),
        source=fx.source,
        quoted_at=unix_seconds(fx.quoted_at),
    )


def _status(kind: EntryKind, resolution: EntryKind | None, expires_at: datetime | None, moment: datetime) -> EntryStatus:
    if kind != EntryKind.PENDING:
        return "posted"
    if resolution is not None:
        return cast(EntryStatus, RESOLUTIONS[resolution])
    # Checked on read: a hold past its expiry is expired even before the job releases it.
    return "expired" if expires_at is not None and expires_at <= moment else "pending"


def entry_resource(
    plan: Plan,
    *,
    created_at: datetime,
    livemode: bool,
    moment: datetime,
    resolution: EntryKind | None = None,
    resolved_by: str | None = None,
    reversed_by: str | None = None,
) -> Entry:
    """The entry of `plan`, with what later happened to it; `moment` is now, for a hold's status."""
    draft = plan.draft
    return Entry(
        id=plan.entry_id,
        object="ledger.entry",
        type=plan.kind.value,
        status=_status(plan.kind, resolution, plan.expires_at, moment),
        reference=draft.reference,
        description=draft.description,
        metadata=dict(draft.metadata),
        postings=[_posting_resource(posting) for posting in draft.postings],
        effective_at=unix_seconds(plan.effective_at),
        expires_at=unix_seconds_or_none(plan.expires_at),
        pending_entry=plan.pending_entry_id,
        resolved_by=resolved_by,
        reverses=plan.reverses_entry_id,
        reversed_by=reversed_by,
        fx=_fx_resource(draft.fx),
        created=unix_seconds(created_at),
        livemode=livemode,
    )


def stored_draft(row: AnyRow, postings: Sequence[AnyRow]) -> EntryDraft:
    """The draft an entry of the journal was written from (a replay is compared with it)."""
    fx = (
        FxQuote(row["fx_from"], row["fx_to"], row["fx_rate"], row["fx_source"], row["fx_quoted_at"])
        if row["fx_rate"] is not None
        else None
    )
    return EntryDraft(
        postings=tuple(repository.posting_draft(p) for p in postings),
        reference=row["reference"],
        description=row["description"],
        metadata=row["metadata"],
        effective_at=row["effective_at"],
        pending=row["kind"] == EntryKind.PENDING,
        timeout_s=round((row["expires_at"] - row["created_at"]).total_seconds()) if row["expires_at"] is not None else None,
        fx=fx,
    )


def stored_entry(row: AnyRow, postings: Sequence[AnyRow], moment: datetime) -> Entry:
    plan = Plan(
        kind=EntryKind(row["kind"]),
        draft=stored_draft(row, postings),
        effective_at=row["effective_at"],
        entry_id=row["id"],
        expires_at=row["expires_at"],
        pending_entry_id=row["pending_entry_id"],
        reverses_entry_id=row["reverses_entry_id"],
    )
    return entry_resource(
        plan,
        created_at=row["created_at"],
        livemode=row["livemode"],
        moment=moment,
        resolution=EntryKind(row["resolution"]) if row["resolution"] is not None else None,
        resolved_by=row["resolved_by"],
        reversed_by=row["reversed_by"],
    )


async def _with_postings(uow: UnitOfWork, rows: Sequence[AnyRow]) -> list[Entry]:
    postings: dict[str, list[AnyRow]] = {row["id"]: [] for row in rows}
    if rows:
        for posting in await repository.postings_of(uow.connection, uow.tenant, list(postings)):
            postings[posting["entry_id"]].append(posting)
    moment = uow.now()
    return [stored_entry(row, postings[row["id"]], moment) for row in rows]


async def entry_row(uow: UnitOfWork, entry_id: str) -> AnyRow:
    row = await repository.get_entry(uow.connection, uow.tenant, entry_id) if is_id(entry_id, "le") else None
    if row is None:
        raise ResourceMissing(f"No such ledger entry: '{entry_id}'", param="id")
    return row


async def retrieve_entry(uow: UnitOfWork, entry_id: str) -> Entry:
    return (await _with_postings(uow, [await entry_row(uow, entry_id)]))[0]


async def list_entries(uow: UnitOfWork, request: PageRequest, account_id: str | None) -> EntryList:
    # An unknown account is named, as Stripe does for an unknown filter object, not an empty list.
    if account_id is not None and not (
        is_id(account_id, "la") and await repository.account_exists(uow.connection, uow.tenant, account_id)
    ):
        raise ResourceMissing(f"No such ledger account: '{account_id}'", param="account")
    await check_cursors(
        request,
        prefix="le",
        noun="ledger entry",
        exists=lambda cursor: repository.entry_exists(uow.connection, uow.tenant, cursor),
    )
    page = await repository.page_entries(uow.connection, uow.tenant, request, account_id)
    data = await _with_postings(uow, page.rows)
    return EntryList(object="list", url="/v1/ledger/entries", data=data, has_more=page.has_more)
