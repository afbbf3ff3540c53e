"""Use cases of the ledger. Each takes the caller's unit of work and never commits.

Every write goes the same way, for one entry or 8,000: reject what is wrong on its
face, answer replays of known references, lock every balance the entries touch in
(account, stripe) order, compute the new balances and check the account limits in
code, then write entries, postings, holds and balances in one statement. The
database checks the same rules again (constraints, and a deferred trigger that
rejects an unbalanced entry at commit).
"""

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal

import asyncpg

from bastion import audit, events
from bastion.kernel.clock import now, unix_seconds
from bastion.kernel.errors import BastionError, IdempotencyInFlight, InvalidRequest, ResourceMissing, invariant
from bastion.kernel.ids import is_id, new_id
from bastion.kernel.money import AMOUNT_MINOR_MAX
from bastion.ledger import repository
from bastion.ledger.domain import (
    BATCH_ENTRIES_MAX,
    HOLD_TIMEOUT_S_DEFAULT,
    HOLD_TIMEOUT_S_MAX,
    LIMIT_BREACHES,
    POSTINGS_MAX,
    POSTINGS_MIN,
    RESOLUTIONS,
    AccountDraft,
    AccountType,
    Balance,
    Counters,
    Direction,
    EntryDraft,
    EntryKind,
    FxQuote,
    LedgerRejected,
    Limits,
    PostingDraft,
    check_fx,
    check_postings_balance,
    currency_totals,
    first_difference,
    mirrored,
    posting_counters,
    scaled_postings,
)
from bastion.ledger.events import LEDGER_ACCOUNT_CLOSED, LEDGER_ACCOUNT_CREATED
from bastion.platform.db import Actor, AnyRow, Connection, Database, Tenant, UnitOfWork
from bastion.platform.pagination import LIMIT_MAX, PageRequest, check_cursors

# Clocks of clients and servers drift; an entry may be stamped this far ahead of ours.
EFFECTIVE_AT_SKEW_S = 5
_STRIPE_SEED_MAX = 2**30
_BEGINNING = datetime(1, 1, 1, tzinfo=UTC)
EXPIRY_BATCH_MAX = 1_000


class BatchRejected(LedgerRejected):
    """A batch with at least one rejected entry: nothing was written. `results` has one
    item per rejected entry, like TigerBeetle's per-event results."""

    def __init__(self, results: list[dict[str, Any]]) -> None:
        first = results[0]
        self.results = results
        super().__init__(
            f"Entry {first['index']} of the batch was rejected ({first['message']}); nothing was written",
            param=nested_param(f"entries[{first['index']}]", first["param"]),
            code="batch_rejected",
        )


def nested_param(prefix: str, param: str | None) -> str:
    """`postings[0][account]` inside `entries[3]` is `entries[3][postings][0][account]`."""
    if param is None:
        return prefix
    head, bracket, rest = param.partition("[")
    return f"{prefix}[{head}]{bracket}{rest}"


@dataclass(frozen=True, slots=True)
class EntryResult:
    index: int
    result: Literal["created", "exists"]
    entry_id: str
    # The entry resource, built on demand: a batch of 8,000 answers with ids only.
    render: Callable[[], dict[str, Any]]

    @property
    def entry(self) -> dict[str, Any]:
        return self.render()


@dataclass(slots=True)
class _Plan:
    """An entry ready to be checked against the locked balances and written."""

    kind: EntryKind
    draft: EntryDraft
    effective_at: datetime
    entry_id: str = field(default_factory=lambda: new_id("le"))
    expires_at: datetime | None = None
    pending_entry_id: str | None = None
    reverses_entry_id: str | None = None
    # Per posting: the balance stripe it must use (resolving a hold), or None for any.
    stripes: tuple[int | None, ...] = ()
    # Pending amounts a resolved hold gives back: (account, stripe, counters to add).
    releases: tuple[tuple[str, int, Counters], ...] = ()

    def __post_init__(self) -> None:
        if not self.stripes:
            self.stripes = (None,) * len(self.draft.postings)


@dataclass(frozen=True, slots=True)
class _Account:
    currency: str
    exchange: bool
    closed: bool
    stripes: int
    limits: Limits


# Accounts


def account_resource(row: AnyRow) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "ledger.account",
        "currency": row["currency"],
        "type": row["type"],
        "code": row["code"],
        "name": row["name"],
        "exchange": row["exchange"],
        "flags": {
            "debits_must_not_exceed_credits": row["debits_must_not_exceed_credits"],
            "credits_must_not_exceed_debits": row["credits_must_not_exceed_debits"],
        },
        "stripes": row["stripes"],
        "closed": row["closed_at"] is not None,
        "metadata": row["metadata"],
        "created": unix_seconds(row["created_at"]),
        "livemode": row["livemode"],
    }


async def create_account(uow: UnitOfWork, draft: AccountDraft) -> dict[str, Any]:
    draft.check()
    row = await repository.insert_account(
        uow.connection,
        uow.tenant.merchant_id,
        uow.tenant.livemode,
        {
            "id": new_id("la"),
            "currency": draft.currency,
            "type": draft.type.value,
            "code": draft.code,
            "name": draft.name,
            "exchange": draft.exchange,
            "debits_must_not_exceed_credits": draft.debits_must_not_exceed_credits,
            "credits_must_not_exceed_debits": draft.credits_must_not_exceed_debits,
            "stripes": draft.stripes,
            "metadata": dict(draft.metadata),
            "created_at": now(),
        },
    )
    if row is None:
        raise LedgerRejected(f"A ledger account with code {draft.code!r} already exists", param="code", code="code_taken")
    resource = account_resource(row)
    await audit.record(
        uow,
        action_type="ledger.account.create",
        resource_type="ledger.account",
        resource_id=row["id"],
        before=None,
        after=resource,
    )
    await events.emit(uow, LEDGER_ACCOUNT_CREATED, resource)
    return resource


async def _account(uow: UnitOfWork, account_id: str, param: str = "id") -> AnyRow:
    row = await repository.get_account(uow.connection, uow.tenant, account_id) if is_id(account_id, "la") else None
    if row is None:
        raise ResourceMissing(f"No such ledger account: '{account_id}'", param=param)
    return row


async def retrieve_account(uow: UnitOfWork, account_id: str) -> dict[str, Any]:
    return account_resource(await _account(uow, account_id))


async def close_account(uow: UnitOfWork, account_id: str) -> dict[str, Any]:
    """A closed account takes no new postings; its holds can still be voided or expire."""
    before = account_resource(await _account(uow, account_id))
    if before["closed"]:
        return before
    await repository.close_account(uow.connection, uow.tenant, account_id, now())
    after = account_resource(await _account(uow, account_id))
    await audit.record(
        uow,
        action_type="ledger.account.close",
        resource_type="ledger.account",
        resource_id=account_id,
        before=before,
        after=after,
    )
    await events.emit(uow, LEDGER_ACCOUNT_CLOSED, after, previous_attributes={"closed": False})
    return after


async def list_accounts(
    uow: UnitOfWork, request: PageRequest, *, code: str | None, currency: str | None, type_: AccountType | None
) -> tuple[list[dict[str, Any]], bool]:
    await check_cursors(
        request,
        prefix="la",
        noun="ledger account",
        exists=lambda cursor: repository.account_exists(uow.connection, uow.tenant, cursor),
    )
    page = await repository.page_accounts(
        uow.connection, uow.tenant, request, code=code, currency=currency, type_=type_.value if type_ is not None else None
    )
    return [account_resource(row) for row in page.rows], page.has_more


# Balances


def _counters(row: AnyRow) -> Counters:
    # Sums over stripes come back as numeric; every value is a whole number of minor units.
    return Counters(
        int(row["debits_posted"] or 0),
        int(row["credits_posted"] or 0),
        int(row["debits_pending"] or 0),
        int(row["credits_pending"] or 0),
    )


def balance_resource(account: AnyRow, counters: Counters, as_of: datetime | None) -> dict[str, Any]:
    balance = Balance(AccountType(account["type"]), counters)
    return {
        "object": "ledger.balance",
        "account": account["id"],
        "currency": account["currency"],
        "as_of": unix_seconds(as_of) if as_of is not None else None,
        "debits_posted": counters.debits_posted,
        "credits_posted": counters.credits_posted,
        "debits_pending": counters.debits_pending,
        "credits_pending": counters.credits_pending,
        "posted": balance.posted,
        "pending": balance.pending,
        "available": balance.available,
        "livemode": account["livemode"],
    }


async def account_counters(connection: Connection, account_id: str, as_of: datetime | None) -> Counters:
    """The four counters now (holds past their expiry already left out) or at `as_of`."""
    if as_of is not None:
        return _counters(await repository.counters_as_of(connection, account_id, as_of))
    stored = _counters(await repository.account_counters(connection, account_id))
    if stored.debits_pending == 0 and stored.credits_pending == 0:
        return stored
    due = await repository.due_hold_counters(connection, account_id, now())
    return stored + -Counters(debits_pending=int(due["debits_pending"]), credits_pending=int(due["credits_pending"]))


async def balance(uow: UnitOfWork, account_id: str, as_of: datetime | None = None) -> dict[str, Any]:
    account = await _account(uow, account_id)
    return balance_resource(account, await account_counters(uow.connection, account_id, as_of), as_of)


async def statement(uow: UnitOfWork, account_id: str, *, limit: int, starting_after: str | None) -> tuple[dict[str, Any], bool]:
    """Posted entries on the account, oldest first, each with the balance after it."""
    account = await _account(uow, account_id)
    after: tuple[datetime, str] = (_BEGINNING, "")
    if starting_after is not None:
        moment = (
            await repository.posting_time(uow.connection, account_id, starting_after) if is_id(starting_after, "le") else None
        )
        if moment is None:
            raise InvalidRequest(f"No posted entry '{starting_after}' on this account", param="starting_after")
        after = (moment, starting_after)
    sign = 1 if AccountType(account["type"]).debit_normal else -1
    debits_before, credits_before = await repository.posted_before(uow.connection, account_id, after)
    opening = sign * int(debits_before - credits_before)
    rows = await repository.statement_lines(uow.connection, account_id, after, min(limit, LIMIT_MAX) + 1)
    running = opening
    lines = []
    for row in rows[:limit]:
        debit, credit = int(row["debit_minor"]), int(row["credit_minor"])
        running += sign * (debit - credit)
        lines.append(
            {
                "entry": row["entry_id"],
                "effective_at": unix_seconds(row["effective_at"]),
                "debit_minor": debit,
                "credit_minor": credit,
                "balance_minor": running,
            }
        )
    body = {
        "object": "ledger.statement",
        "account": account_id,
        "currency": account["currency"],
        "opening_balance_minor": opening,
        "data": lines,
    }
    return body, len(rows) > limit


# Entries


def _posting_resource(posting: PostingDraft) -> dict[str, Any]:
    return {
        "account": posting.account_id,
        "direction": posting.direction,
        "amount_minor": posting.amount_minor,
        "currency": posting.currency,
    }


def _fx_resource(fx: FxQuote | None) -> dict[str, Any] | None:
    if fx is None:
        return None
    return {
        "from_currency": fx.from_currency,
        "to_currency": fx.to_currency,
        "rate": str(fx.rate),
        "source": fx.source,
        "quoted_at": unix_seconds(fx.quoted_at),
    }


def _status(kind: EntryKind, resolution: str | None, expires_at: datetime | None) -> str:
    if kind != EntryKind.PENDING:
        return "posted"
    if resolution is not None:
        return RESOLUTIONS[EntryKind(resolution)]
    # Checked on read: a hold past its expiry is expired even before the job releases it.
    return "expired" if expires_at is not None and expires_at <= now() else "pending"


def _entry_body(
    *,
    entry_id: str,
    kind: EntryKind,
    draft: EntryDraft,
    effective_at: datetime,
    created_at: datetime,
    livemode: bool,
    expires_at: datetime | None,
    pending_entry_id: str | None,
    reverses_entry_id: str | None,
    resolution: str | None = None,
    resolved_by: str | None = None,
    reversed_by: str | None = None,
) -> dict[str, Any]:
    return {
        "id": entry_id,
        "object": "ledger.entry",
        "type": kind.value,
        "status": _status(kind, resolution, expires_at),
        "reference": draft.reference,
        "description": draft.description,
        "metadata": dict(draft.metadata),
        "postings": [_posting_resource(posting) for posting in draft.postings],
        "effective_at": unix_seconds(effective_at),
        "expires_at": unix_seconds(expires_at) if expires_at is not None else None,
        "pending_entry": pending_entry_id,
        "resolved_by": resolved_by,
        "reverses": reverses_entry_id,
        "reversed_by": reversed_by,
        "fx": _fx_resource(draft.fx),
        "created": unix_seconds(created_at),
        "livemode": livemode,
    }


def _direction(posting: AnyRow) -> Direction:
    return "credit" if posting["is_credit"] else "debit"


def _stored_draft(row: AnyRow, postings: Sequence[AnyRow]) -> EntryDraft:
    fx = (
        FxQuote(row["fx_from"], row["fx_to"], row["fx_rate"], row["fx_source"], row["fx_quoted_at"])
        if row["fx_rate"] is not None
        else None
    )
    kind = EntryKind(row["kind"])
    return EntryDraft(
        postings=tuple(PostingDraft(p["account_id"], _direction(p), p["amount_minor"], p["currency"]) for p in postings),
        reference=row["reference"],
        description=row["description"],
        metadata=row["metadata"],
        effective_at=row["effective_at"],
        pending=kind == EntryKind.PENDING,
        timeout_s=round((row["expires_at"] - row["created_at"]).total_seconds()) if row["expires_at"] is not None else None,
        fx=fx,
    )


def _stored_entry(row: AnyRow, postings: Sequence[AnyRow]) -> dict[str, Any]:
    return _entry_body(
        entry_id=row["id"],
        kind=EntryKind(row["kind"]),
        draft=_stored_draft(row, postings),
        effective_at=row["effective_at"],
        created_at=row["created_at"],
        livemode=row["livemode"],
        expires_at=row["expires_at"],
        pending_entry_id=row["pending_entry_id"],
        reverses_entry_id=row["reverses_entry_id"],
        resolution=row["resolution"],
        resolved_by=row["resolved_by"],
        reversed_by=row["reversed_by"],
    )


async def _with_postings(uow: UnitOfWork, rows: Sequence[AnyRow]) -> list[dict[str, Any]]:
    postings: dict[str, list[AnyRow]] = {row["id"]: [] for row in rows}
    if rows:
        for posting in await repository.postings_of(uow.connection, uow.tenant, list(postings)):
            postings[posting["entry_id"]].append(posting)
    return [_stored_entry(row, postings[row["id"]]) for row in rows]


async def _entry_row(uow: UnitOfWork, entry_id: str) -> AnyRow:
    row = await repository.get_entry(uow.connection, uow.tenant, entry_id) if is_id(entry_id, "le") else None
    if row is None:
        raise ResourceMissing(f"No such ledger entry: '{entry_id}'", param="id")
    return row


async def retrieve_entry(uow: UnitOfWork, entry_id: str) -> dict[str, Any]:
    return (await _with_postings(uow, [await _entry_row(uow, entry_id)]))[0]


async def list_entries(uow: UnitOfWork, request: PageRequest, account_id: str | None) -> tuple[list[dict[str, Any]], bool]:
    if account_id is not None:
        await _account(uow, account_id, param="account")
    await check_cursors(
        request,
        prefix="le",
        noun="ledger entry",
        exists=lambda cursor: repository.entry_exists(uow.connection, uow.tenant, cursor),
    )
    page = await repository.page_entries(uow.connection, uow.tenant, request, account_id)
    return await _with_postings(uow, page.rows), page.has_more


def _check_draft(draft: EntryDraft, moment: datetime) -> None:
    """What can be rejected before looking at any account."""
    for index, posting in enumerate(draft.postings):
        if not 0 < posting.amount_minor <= AMOUNT_MINOR_MAX:
            raise LedgerRejected("amount_minor must be 1 to 2^63-1", param=f"postings[{index}][amount_minor]")
    check_postings_balance(draft.postings)
    if draft.effective_at is not None and draft.effective_at > moment + timedelta(seconds=EFFECTIVE_AT_SKEW_S):
        raise LedgerRejected("effective_at must not be in the future", param="effective_at", code="effective_at_future")
    if draft.timeout_s is not None:
        if not draft.pending:
            raise LedgerRejected("timeout_s is only for holds (pending: true)", param="timeout_s")
        if not 1 <= draft.timeout_s <= HOLD_TIMEOUT_S_MAX:
            raise LedgerRejected(f"timeout_s must be 1 to {HOLD_TIMEOUT_S_MAX} seconds", param="timeout_s")


def _new_plan(draft: EntryDraft, moment: datetime) -> _Plan:
    if draft.pending:
        timeout_s = draft.timeout_s if draft.timeout_s is not None else HOLD_TIMEOUT_S_DEFAULT
        return _Plan(
            kind=EntryKind.PENDING,
            draft=draft,
            effective_at=draft.effective_at or moment,
            expires_at=moment + timedelta(seconds=timeout_s),
        )
    return _Plan(kind=EntryKind.STANDARD, draft=draft, effective_at=draft.effective_at or moment)


async def post_entries(
    uow: UnitOfWork, drafts: Sequence[EntryDraft], *, platform: bool = False, as_batch: bool = True
) -> list[EntryResult]:
    """Post `drafts` atomically inside the caller's unit of work: all are written, or
    none and `BatchRejected` says why (with `as_batch=False`, a single draft's own
    `LedgerRejected`, whose param names the field of the entry itself).

    A draft whose reference is already in the journal with the same content is not
    written again: its result is "exists". With `platform`, postings may also reach
    the platform's accounts (a fee account); the HTTP API never sets it."""
    invariant(0 < len(drafts) <= BATCH_ENTRIES_MAX, "a batch holds 1 to BATCH_ENTRIES_MAX entries")
    moment = now()
    failures: dict[int, LedgerRejected] = {}
    for index, draft in enumerate(drafts):
        try:
            _check_draft(draft, moment)
        except LedgerRejected as error:
            failures[index] = error
    results: dict[int, EntryResult] = {}
    await _answer_replays(uow, drafts, results, failures)
    indexed = [
        (index, _new_plan(draft, moment)) for index, draft in enumerate(drafts) if index not in failures and index not in results
    ]
    await _check_and_write(uow, indexed, failures, moment, platform=platform, as_batch=as_batch)
    for index, plan in indexed:
        results[index] = EntryResult(index, "created", plan.entry_id, partial(_plan_body, plan, moment, uow.tenant.livemode))
    return [results[index] for index in range(len(drafts))]


async def post_entry(uow: UnitOfWork, draft: EntryDraft, *, platform: bool = False) -> dict[str, Any]:
    """One entry; see `post_entries`."""
    return (await post_entries(uow, [draft], platform=platform, as_batch=False))[0].entry


async def _answer_replays(
    uow: UnitOfWork, drafts: Sequence[EntryDraft], results: dict[int, EntryResult], failures: dict[int, LedgerRejected]
) -> None:
    """Results for drafts whose reference is known: "exists" when the content matches,
    a rejection naming the first field that differs otherwise."""
    first_use: dict[str, int] = {}
    for index, draft in enumerate(drafts):
        if draft.reference is None or index in failures:
            continue
        if draft.reference in first_use:
            failures[index] = LedgerRejected(
                f"The reference {draft.reference!r} is also used by entry {first_use[draft.reference]} of this batch",
                param="reference",
                code="reference_duplicated",
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
        difference = first_difference(_stored_draft(row, postings), drafts[index])
        if difference is None:
            results[index] = EntryResult(index, "exists", row["id"], partial(_stored_entry, row, postings))
        else:
            failures[index] = LedgerRejected(
                f"The reference {row['reference']!r} was already used for entry {row['id']} with a different {difference}",
                param=difference,
                code="reference_reused",
            )


def _plan_body(plan: _Plan, created_at: datetime, livemode: bool) -> dict[str, Any]:
    return _entry_body(
        entry_id=plan.entry_id,
        kind=plan.kind,
        draft=plan.draft,
        effective_at=plan.effective_at,
        created_at=created_at,
        livemode=livemode,
        expires_at=plan.expires_at,
        pending_entry_id=plan.pending_entry_id,
        reverses_entry_id=plan.reverses_entry_id,
    )


async def _check_and_write(
    uow: UnitOfWork,
    indexed: Sequence[tuple[int, _Plan]],
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
            raise _rejection(failures, as_batch=as_batch)
        return
    if platform:
        await repository.allow_platform_accounts(uow.connection)
    seed = random.randrange(_STRIPE_SEED_MAX)  # noqa: S311  (spreads writers over stripes; not a secret)
    targets = {(p.account_id, stripe) for _, plan in indexed for p, stripe in zip(plan.draft.postings, plan.stripes, strict=True)}
    targets |= {(account_id, stripe) for _, plan in indexed for account_id, stripe, _ in plan.releases}
    rows = await repository.lock_balances(uow.connection, uow.tenant, list(targets), stripe_seed=seed, platform=platform)
    accounts, balances, refused = _evaluate(indexed, rows, seed)
    limited = {
        account_id
        for index, error in refused.items()
        if error.code in LIMIT_BREACHES
        for account_id in _accounts_of(indexed, index)
    }
    if limited:
        # Holds past their expiry that the job has not released yet would refuse
        # funds a read already shows as available: release them here, if that needs no wait.
        expiries, more_rows = await _release_due_holds(uow, limited, {(row["account_id"], row["stripe"]) for row in rows}, moment)
        if expiries:
            indexed = [*((-1 - n, plan) for n, plan in enumerate(expiries)), *indexed]
            rows = [*rows, *more_rows]
            accounts, balances, refused = _evaluate(indexed, rows, seed)
            invariant(all(index >= 0 for index in refused), "releasing a hold never breaks a rule")
    failures.update(refused)
    if failures:
        raise _rejection(failures, as_batch=as_batch)
    changed = {(row["account_id"], row["stripe"]): balances[(row["account_id"], row["stripe"])] for row in rows}
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
            created_at=moment,
            actor=uow.actor.id,
            request_id=uow.actor.request_id,
            **_columns([plan for _, plan in indexed], changed, accounts, seed),
        )
    except asyncpg.UniqueViolationError as error:
        answer = _unique_violation(error)
        if answer is None:
            raise
        raise answer from None


def _evaluate(
    indexed: Sequence[tuple[int, _Plan]], rows: Sequence[AnyRow], seed: int
) -> tuple[dict[str, _Account], dict[tuple[str, int], Counters], dict[int, LedgerRejected]]:
    """Each plan against the locked balances as the plans before it left them."""
    accounts = {row["account_id"]: _account_of(row) for row in rows}
    balances = {(row["account_id"], row["stripe"]): _counters(row) for row in rows}
    refused: dict[int, LedgerRejected] = {}
    for index, plan in indexed:
        try:
            balances.update(_apply(plan, accounts, balances, seed))
        except LedgerRejected as error:
            refused[index] = error
    return accounts, balances, refused


def _accounts_of(indexed: Sequence[tuple[int, _Plan]], index: int) -> set[str]:
    return {posting.account_id for at, plan in indexed if at == index for posting in plan.draft.postings}


async def _release_due_holds(
    uow: UnitOfWork, accounts: set[str], locked: set[tuple[str, int]], moment: datetime
) -> tuple[list[_Plan], list[AnyRow]]:
    """Expiry plans for due holds on `accounts`, and the extra balance rows they lock.

    Nothing here waits: a balance row or an open hold that another transaction holds is
    skipped (SKIP LOCKED), so taking these locks out of order cannot deadlock; a hold
    skipped here is left to the expiry job."""
    postings: dict[str, list[AnyRow]] = {}
    for posting in await repository.due_hold_postings(uow.connection, uow.tenant, list(accounts), moment):
        postings.setdefault(posting["entry_id"], []).append(posting)
    plans: list[_Plan] = []
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
        plans.append(_release_plan(EntryKind.EXPIRE_PENDING, hold_id, hold_postings, moment))
    return plans, more_rows


def _rejection(failures: dict[int, LedgerRejected], *, as_batch: bool) -> LedgerRejected:
    if not as_batch:
        return next(iter(failures.values()))
    return BatchRejected(
        [
            {"index": index, "code": error.code, "message": error.message, "param": error.param}
            for index, error in sorted(failures.items())
        ]
    )


def _unique_violation(error: asyncpg.UniqueViolationError) -> BastionError | None:
    """Our answer to a race the unique indexes settled, or None for any other violation."""
    constraint = str(error.constraint_name or "")
    if constraint.endswith("_reference"):
        return IdempotencyInFlight(
            "Another request wrote an entry with this reference at the same moment; retry to get that entry",
            param="reference",
            code="reference_in_flight",
        )
    if constraint.endswith("_reverses_entry_id"):
        return LedgerRejected("This entry was reversed by a concurrent request", param="id", code="entry_already_reversed")
    return None


def _account_of(row: AnyRow) -> _Account:
    return _Account(
        currency=row["currency"],
        exchange=row["exchange"],
        closed=row["closed"],
        stripes=row["stripes"],
        limits=Limits(row["debits_must_not_exceed_credits"], row["credits_must_not_exceed_debits"]),
    )


def _apply(
    plan: _Plan, accounts: dict[str, _Account], balances: dict[tuple[str, int], Counters], seed: int
) -> dict[tuple[str, int], Counters]:
    """The balances `plan` leaves behind, or the rejection of its first fault."""
    pending = plan.kind == EntryKind.PENDING
    new: dict[tuple[str, int], Counters] = {}
    first_posting: dict[str, int] = {}
    for index, (posting, stripe) in enumerate(zip(plan.draft.postings, plan.stripes, strict=True)):
        account = accounts.get(posting.account_id)
        if account is None:
            raise LedgerRejected(
                f"No such ledger account: '{posting.account_id}'", param=f"postings[{index}][account]", code="account_missing"
            )
        if account.closed:
            raise LedgerRejected(
                f"The ledger account '{posting.account_id}' is closed", param=f"postings[{index}][account]", code="account_closed"
            )
        if posting.currency != account.currency:
            raise LedgerRejected(
                f"The ledger account '{posting.account_id}' holds {account.currency}, not {posting.currency}",
                param=f"postings[{index}][currency]",
                code="currency_mismatch",
            )
        key = (posting.account_id, stripe if stripe is not None else seed % account.stripes)
        new[key] = new.get(key, balances[key]) + posting_counters(posting.direction, posting.amount_minor, pending=pending)
        first_posting.setdefault(posting.account_id, index)
    if plan.draft.postings:
        check_fx(plan.draft, {p.account_id for p in plan.draft.postings if accounts[p.account_id].exchange})
    for account_id, stripe, release in plan.releases:
        key = (account_id, stripe)
        new[key] = new.get(key, balances[key]) + release
    for (account_id, _), counters in new.items():
        param = f"postings[{first_posting[account_id]}]" if account_id in first_posting else None
        if not counters.fits():
            raise LedgerRejected(
                f"The entry would take the balance of '{account_id}' beyond 2^63-1 minor units",
                param=param,
                code="balance_overflow",
            )
        breach = accounts[account_id].limits.breach(counters)
        if breach is not None:
            side = "debits" if breach == "exceeds_credits" else "credits"
            raise LedgerRejected(
                f"The entry would take the {side} of '{account_id}' beyond its limit (insufficient funds)",
                param=param,
                code=breach,
            )
    return new


def _transpose(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to the columns `unnest` takes."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _columns(
    plans: Sequence[_Plan], changed: dict[tuple[str, int], Counters], accounts: dict[str, _Account], seed: int
) -> dict[str, list[list[Any]]]:
    entries: list[tuple[Any, ...]] = []
    postings: list[tuple[Any, ...]] = []
    holds: list[tuple[Any, ...]] = []
    for plan in plans:
        fx = plan.draft.fx
        entries.append(
            (
                plan.entry_id,
                plan.kind.value,
                plan.draft.reference,
                plan.draft.description,
                dict(plan.draft.metadata),
                plan.effective_at,
                plan.expires_at,
                plan.pending_entry_id,
                plan.reverses_entry_id,
                *((fx.from_currency, fx.to_currency, fx.rate, fx.source, fx.quoted_at) if fx else (None,) * 5),
            )
        )
        pending = plan.kind == EntryKind.PENDING
        postings.extend(
            (
                plan.entry_id,
                index,
                posting.account_id,
                stripe if stripe is not None else seed % accounts[posting.account_id].stripes,
                posting.currency,
                posting.amount_minor,
                posting.direction == "credit",
                pending,
                plan.effective_at,
            )
            for index, (posting, stripe) in enumerate(zip(plan.draft.postings, plan.stripes, strict=True))
        )
        if pending:
            holds.append((plan.entry_id, plan.expires_at))
    balances = [(account_id, stripe, *counters.values()) for (account_id, stripe), counters in changed.items()]
    return {
        "entries": _transpose(entries, 14),
        "postings": _transpose(postings, 9),
        "holds": _transpose(holds, 2),
        "balances": _transpose(balances, 6),
    }


# Holds and reversals


async def _hold_plan(uow: UnitOfWork, hold_id: str, kind: EntryKind, amount_minor: int | None) -> _Plan:
    hold = await _entry_row(uow, hold_id)
    if hold["kind"] != EntryKind.PENDING:
        raise LedgerRejected(f"The entry '{hold_id}' is not a hold", param="id", code="entry_not_pending")
    taken = await repository.take_open_hold(uow.connection, uow.tenant, hold_id)
    if taken is None:
        current = await repository.get_entry(uow.connection, uow.tenant, hold_id)
        state = RESOLUTIONS[EntryKind(current["resolution"])] if current and current["resolution"] else "resolved"
        raise LedgerRejected(f"The hold '{hold_id}' is already {state}", param="id", code=f"hold_already_{state}")
    moment = now()
    expired = taken["expires_at"] <= moment
    if kind == EntryKind.EXPIRE_PENDING and not expired:
        raise LedgerRejected(f"The hold '{hold_id}' is not due to expire yet", param="id", code="hold_not_due")
    if kind != EntryKind.EXPIRE_PENDING and expired:
        raise LedgerRejected(f"The hold '{hold_id}' has expired", param="id", code="hold_expired")
    postings = await repository.postings_of(uow.connection, uow.tenant, [hold_id])
    released = _release_plan(kind, hold_id, postings, moment)
    if kind != EntryKind.POST_PENDING:
        return released
    draft = _stored_draft(hold, postings)
    posted = draft.postings
    if amount_minor is not None:
        if amount_minor < 1:
            raise LedgerRejected("amount_minor must be positive", param="amount_minor")
        if len(posted) != 2:
            raise LedgerRejected(
                "Only a hold of two postings can be posted for a smaller amount; post it in full", param="amount_minor"
            )
        if amount_minor > posted[0].amount_minor:
            raise LedgerRejected(
                f"amount_minor {amount_minor} exceeds the held {posted[0].amount_minor}",
                param="amount_minor",
                code="amount_exceeds_pending",
            )
        posted = scaled_postings(posted, amount_minor)
    # Posted to the stripes that held it.
    return replace(released, draft=EntryDraft(postings=posted, fx=draft.fx), stripes=tuple(p["stripe"] for p in postings))


def _release_plan(kind: EntryKind, hold_id: str, postings: Sequence[AnyRow], moment: datetime) -> _Plan:
    """An entry that resolves the hold: it gives back what the hold's postings reserved,
    on the stripes that reserved it."""
    releases = tuple(
        (p["account_id"], p["stripe"], -posting_counters(_direction(p), p["amount_minor"], pending=True)) for p in postings
    )
    return _Plan(kind=kind, draft=EntryDraft(postings=()), effective_at=moment, pending_entry_id=hold_id, releases=releases)


async def _resolve(uow: UnitOfWork, plan: _Plan) -> dict[str, Any]:
    """Write an entry derived from the journal: its accounts, platform ones included,
    were checked when the entry it derives from was posted."""
    await _check_and_write(uow, [(0, plan)], {}, plan.effective_at, platform=True)
    return _plan_body(plan, plan.effective_at, uow.tenant.livemode)


async def post_pending(uow: UnitOfWork, hold_id: str, amount_minor: int | None = None) -> dict[str, Any]:
    """Post a hold, in full or for a smaller amount; the rest of the reservation is released."""
    return await _resolve(uow, await _hold_plan(uow, hold_id, EntryKind.POST_PENDING, amount_minor))


async def void_pending(uow: UnitOfWork, hold_id: str) -> dict[str, Any]:
    return await _resolve(uow, await _hold_plan(uow, hold_id, EntryKind.VOID_PENDING, None))


async def reverse_entry(uow: UnitOfWork, entry_id: str, description: str | None = None) -> dict[str, Any]:
    """A new entry with every posting mirrored; the original stays as it was."""
    row = await _entry_row(uow, entry_id)
    kind = EntryKind(row["kind"])
    if kind == EntryKind.PENDING:
        raise LedgerRejected(
            "A hold is not reversed: void it, or reverse the entry that posted it", param="id", code="entry_is_hold"
        )
    if kind not in (EntryKind.STANDARD, EntryKind.POST_PENDING):
        raise LedgerRejected(f"An entry of type {kind.value} cannot be reversed", param="id", code="entry_not_reversible")
    if row["reversed_by"] is not None:
        raise LedgerRejected(
            f"The entry '{entry_id}' was already reversed by '{row['reversed_by']}'", param="id", code="entry_already_reversed"
        )
    original = _stored_draft(row, await repository.postings_of(uow.connection, uow.tenant, [entry_id]))
    draft = EntryDraft(postings=mirrored(original.postings), description=description, fx=original.fx)
    plan = _Plan(kind=EntryKind.REVERSAL, draft=draft, effective_at=now(), reverses_entry_id=entry_id)
    return await _resolve(uow, plan)


async def expire_hold(uow: UnitOfWork, hold_id: str) -> dict[str, Any]:
    """Release a hold past its expiry (the expiry job's step, one hold per transaction)."""
    return await _resolve(uow, await _hold_plan(uow, hold_id, EntryKind.EXPIRE_PENDING, None))


async def expire_due_holds(database: Database, *, limit: int = EXPIRY_BATCH_MAX) -> int:
    """The expiry job: release up to `limit` holds past their expiry, one transaction
    each; a hold posted or voided meanwhile is skipped. Returns how many expired."""
    async with database.connection() as connection:
        due = await repository.due_holds(connection, now(), limit)
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


# The operator's view: every tenant, as the owner


async def balance_any_tenant(connection: Connection, account_id: str, as_of: datetime | None = None) -> dict[str, Any]:
    """An account's balance, whichever merchant (or the platform) holds it: for the
    operator's CLI, which connects as the owner."""
    account = await repository.get_account_any_tenant(connection, account_id) if is_id(account_id, "la") else None
    if account is None:
        raise ResourceMissing(f"No such ledger account: '{account_id}'", param="account")
    return balance_resource(account, await account_counters(connection, account_id, as_of), as_of)


@dataclass(frozen=True, slots=True)
class Violation:
    """The first broken invariant of the journal: its name, where, and a one-line message."""

    invariant: str
    message: str
    entry: str | None = None
    account: str | None = None


@dataclass(frozen=True, slots=True)
class JournalSummary:
    """What a check that found nothing wrong looked at."""

    entries: int
    postings: int
    accounts: int


def _net(net_minor: int) -> str:
    return f"debits exceed credits by {net_minor}" if net_minor > 0 else f"credits exceed debits by {-net_minor}"


def _unbalanced_entry(row: AnyRow) -> Violation:
    entry_id = row["entry_id"]
    message = f"entry {entry_id} does not balance in {row['currency']}: {_net(int(row['net_minor']))} minor units"
    return Violation("entry_balanced", message, entry=entry_id)


def _posting_count(row: AnyRow) -> Violation:
    entry_id, kind = row["entry_id"], EntryKind(row["kind"])
    wanted = "none" if kind in (EntryKind.VOID_PENDING, EntryKind.EXPIRE_PENDING) else f"{POSTINGS_MIN} to {POSTINGS_MAX}"
    message = f"entry {entry_id} of type {kind.value} has {row['postings']} postings, not {wanted}"
    return Violation("posting_count", message, entry=entry_id)


def _posting_account(row: AnyRow) -> Violation:
    entry_id, account_id = row["entry_id"], row["account_id"]
    posting = f"posting {row['idx']} of entry {entry_id}"
    if row["orphan"]:
        return Violation("posting_entry", f"{posting} belongs to no entry: entry {entry_id} does not exist", entry_id)
    if row["other_tenant"]:
        return Violation("posting_entry", f"{posting} carries another merchant or mode than its entry", entry_id)
    if row["account_currency"] is None:
        return Violation("posting_account", f"{posting} names account {account_id}, which does not exist", entry_id, account_id)
    message = f"{posting} is in {row['currency']}, but its account {account_id} holds {row['account_currency']}"
    return Violation("posting_currency", message, entry_id, account_id)


_COUNTER_NAMES = ("debits_posted", "credits_posted", "debits_pending", "credits_pending")


def _stored_balance(row: AnyRow) -> Violation:
    account_id = row["account_id"]
    name = next(name for name in _COUNTER_NAMES if row[f"stored_{name}"] != row[f"journal_{name}"])
    stored, summed = int(row[f"stored_{name}"]), int(row[f"journal_{name}"])
    message = f"account {account_id} stores {name} {stored}, but its postings sum to {summed}"
    return Violation("balance_matches_journal", message, account=account_id)


def _balance_limit(row: AnyRow) -> Violation:
    account_id, counters = row["account_id"], _counters(row)
    if row["debits_must_not_exceed_credits"]:
        flag, outflow, inflow = "debits_must_not_exceed_credits", "debits", "credits"
        used, limit = counters.debits_posted + counters.debits_pending, counters.credits_posted
    else:
        flag, outflow, inflow = "credits_must_not_exceed_debits", "credits", "debits"
        used, limit = counters.credits_posted + counters.credits_pending, counters.debits_posted
    message = (
        f"account {account_id} (stripe {row['stripe']}) breaks {flag}: "
        f"{outflow} posted and pending {used} exceed {inflow} posted {limit}"
    )
    return Violation("balance_limit", message, account=account_id)


def _open_hold(row: AnyRow) -> Violation:
    entry_id = row["entry_id"]
    if row["listed"] and row["expires_at"] is None:
        message = f"open hold {entry_id} is not a hold: its entry is of type {row['kind']}"
    elif row["listed"] and row["resolved_by"] is not None:
        message = f"hold {entry_id} was resolved by {row['resolved_by']} but is still listed as open"
    elif row["listed"]:
        message = f"open hold {entry_id} expires at {row['listed_expires_at']}, but its entry at {row['expires_at']}"
    else:
        message = f"hold {entry_id} is unresolved but missing from the open holds"
    return Violation("open_holds", message, entry=entry_id)


def _entry_link(row: AnyRow) -> Violation:
    entry_id, target_id, kind = row["entry_id"], row["target_id"], EntryKind(row["kind"])
    wanted = "a standard or post_pending entry" if kind == EntryKind.REVERSAL else "a hold"
    if row["target_kind"] is None:
        found = "which does not exist"
    elif row["other_tenant"]:
        found = "an entry of another tenant"
    else:
        found = f"an entry of type {row['target_kind']}"
    message = f"entry {entry_id} of type {kind.value} points to {target_id}, {found}, not {wanted} of its tenant"
    return Violation("entry_link", message, entry=entry_id)


# In the order they are checked: each query's first offending row, and what it says.
_JOURNAL_CHECKS: tuple[tuple[Callable[[Connection], Awaitable[AnyRow | None]], Callable[[AnyRow], Violation]], ...] = (
    (repository.first_unbalanced_entry, _unbalanced_entry),
    (
        partial(repository.first_entry_with_wrong_posting_count, postings_min=POSTINGS_MIN, postings_max=POSTINGS_MAX),
        _posting_count,
    ),
    (repository.first_posting_off_its_account, _posting_account),
    (repository.first_balance_off_the_journal, _stored_balance),
    (repository.first_balance_over_its_limit, _balance_limit),
    (repository.first_open_hold_mismatch, _open_hold),
    (repository.first_bad_entry_link, _entry_link),
)


async def check_journal(connection: Connection) -> Violation | JournalSummary:
    """Every invariant of the ledger over the whole journal, all tenants: the first
    violation, or a summary of what was checked. Run it as the owner, in one
    repeatable-read snapshot, so that writes committed meanwhile cannot look like faults."""
    for find, describe in _JOURNAL_CHECKS:
        row = await find(connection)
        if row is not None:
            return describe(row)
    size = await repository.journal_size(connection)
    return JournalSummary(entries=int(size["entries"]), postings=int(size["postings"]), accounts=int(size["accounts"]))
