"""Ledger accounts: opening, closing and listing them, their balances and statements."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bastion import audit, events
from bastion.kernel.clock import unix_seconds, unix_seconds_or_none
from bastion.kernel.errors import ResourceMissing, invariant
from bastion.kernel.ids import is_id, new_id
from bastion.ledger import repository
from bastion.ledger.domain import PLATFORM_MERCHANT_ID, AccountDraft, AccountType, Counters
from bastion.ledger.domain import Balance as BalanceFigures
from bastion.ledger.errors import AccountCodeTaken
from bastion.ledger.events import LEDGER_ACCOUNT_CLOSED, LEDGER_ACCOUNT_CREATED
from bastion.ledger.resources import (
    Account,
    AccountFlags,
    AccountList,
    Balance,
    Statement,
    StatementLine,
)
from bastion.platform.db import AnyRow, Connection, UnitOfWork
from bastion.platform.pagination import LIMIT_MAX, PageRequest, check_cursors

_BEGINNING = datetime(1, 1, 1, tzinfo=UTC)


def account_resource(row: AnyRow) -> Account:
    return Account(
        id=row["id"],
        object="ledger.account",
        currency=row["currency"],
        type=row["type"],
        code=row["code"],
        name=row["name"],
        exchange=row["exchange"],
        flags=AccountFlags(
            debits_must_not_exceed_credits=row["debits_must_not_exceed_credits"],
            credits_must_not_exceed_debits=row["credits_must_not_exceed_debits"],
        ),
        stripes=row["stripes"],
        closed=row["closed_at"] is not None,
        metadata=row["metadata"],
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )


def account_list(rows: Sequence[AnyRow], has_more: bool) -> AccountList:
    return AccountList(object="list", url="/v1/ledger/accounts", data=[account_resource(row) for row in rows], has_more=has_more)


def _account_values(uow: UnitOfWork, draft: AccountDraft) -> dict[str, Any]:
    return {
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
        "created_at": uow.now(),
    }


async def _created(uow: UnitOfWork, row: AnyRow, *, emit: bool) -> Account:
    resource = account_resource(row)
    audit.record(
        uow,
        action_type="ledger.account.create",
        resource_type="ledger.account",
        resource_id=row["id"],
        before=None,
        after=resource,
    )
    if emit:
        events.emit(uow, LEDGER_ACCOUNT_CREATED, resource)
    return resource


async def create_account(uow: UnitOfWork, draft: AccountDraft) -> Account:
    draft.check()
    tenant = uow.tenant
    row = await repository.insert_account(uow.connection, tenant.merchant_id, tenant.livemode, _account_values(uow, draft))
    if row is None:
        raise AccountCodeTaken(f"A ledger account with code {draft.code!r} already exists", param="code")
    return await _created(uow, row, emit=True)


_PLATFORM_ACCOUNTS_SETTING = "bastion.ledger_platform"


async def allow_platform_accounts(uow: UnitOfWork) -> None:
    """Let this transaction see the platform's accounts (row-level security), once."""
    if _PLATFORM_ACCOUNTS_SETTING not in uow.local_settings:
        await repository.allow_platform_accounts(uow.connection)
        uow.local_settings.add(_PLATFORM_ACCOUNTS_SETTING)


async def ensure_account(uow: UnitOfWork, draft: AccountDraft, *, platform: bool = False) -> str:
    """The id of the account with `draft.code`; see `ensure_accounts`."""
    return (await ensure_accounts(uow, [draft], platform=platform))[0]


async def ensure_accounts(uow: UnitOfWork, drafts: Sequence[AccountDraft], *, platform: bool = False) -> list[str]:
    """The ids of the accounts with the drafts' codes, the tenant's or with `platform` the
    platform's (in the tenant's mode), each made as drafted if there is none yet, found in one
    query: for a context that keeps accounts of its own by code (payments). A platform account
    is audited, and its event not sent to the tenant whose payment made it."""
    codes = [str(draft.code) for draft in drafts]
    invariant(None not in (draft.code for draft in drafts), "ensure_accounts finds accounts by their code")
    merchant_id = PLATFORM_MERCHANT_ID if platform else uow.tenant.merchant_id
    livemode = uow.tenant.livemode
    if platform:
        await allow_platform_accounts(uow)
    found = await repository.account_ids_by_code(uow.connection, merchant_id, livemode, codes)
    for draft, code in zip(drafts, codes, strict=True):
        if code not in found:
            found[code] = await _made_account(uow, draft, merchant_id, platform=platform)
    return [found[code] for code in codes]


async def _made_account(uow: UnitOfWork, draft: AccountDraft, merchant_id: str, *, platform: bool) -> str:
    draft.check()
    livemode = uow.tenant.livemode
    row = await repository.insert_account(uow.connection, merchant_id, livemode, _account_values(uow, draft))
    if row is None:
        # Made by a concurrent transaction, committed while this one waited on the code's index.
        made = await repository.account_ids_by_code(uow.connection, merchant_id, livemode, [str(draft.code)])
        invariant(bool(made), f"the account {draft.code} exists")
        return made[str(draft.code)]
    await _created(uow, row, emit=not platform)
    return str(row["id"])


async def accounts_by_code_prefix(uow: UnitOfWork, prefix: str) -> dict[str, str]:
    """The tenant's accounts whose code starts with `prefix`: code -> id, by code."""
    return await repository.accounts_by_code_prefix(uow.connection, uow.tenant, prefix)


async def every_account_by_code_prefix(connection: Connection, prefix: str) -> list[AnyRow]:
    """Every merchant's and the platform's accounts whose code starts with `prefix`, in both
    modes (`merchant_id`, `livemode`, `code`, `id`): for the operator's checks, as the owner."""
    return await repository.every_account_by_code_prefix(connection, prefix)


async def _account(uow: UnitOfWork, account_id: str) -> AnyRow:
    row = await repository.get_account(uow.connection, uow.tenant, account_id) if is_id(account_id, "la") else None
    if row is None:
        raise ResourceMissing(f"No such ledger account: '{account_id}'", param="id")
    return row


async def retrieve_account(uow: UnitOfWork, account_id: str) -> Account:
    return account_resource(await _account(uow, account_id))


async def close_account(uow: UnitOfWork, account_id: str) -> Account:
    """A closed account takes no new postings; its holds can still be voided or expire."""
    before = account_resource(await _account(uow, account_id))
    if before["closed"]:
        return before
    await repository.close_account(uow.connection, uow.tenant, account_id, uow.now())
    after = account_resource(await _account(uow, account_id))
    audit.record(
        uow,
        action_type="ledger.account.close",
        resource_type="ledger.account",
        resource_id=account_id,
        before=before,
        after=after,
    )
    events.emit(uow, LEDGER_ACCOUNT_CLOSED, after, previous_attributes={"closed": False})
    return after


async def list_accounts(
    uow: UnitOfWork, request: PageRequest, *, code: str | None, currency: str | None, type_: AccountType | None
) -> AccountList:
    await check_cursors(
        request,
        prefix="la",
        noun="ledger account",
        exists=lambda cursor: repository.account_exists(uow.connection, uow.tenant, cursor),
    )
    page = await repository.page_accounts(
        uow.connection, uow.tenant, request, code=code, currency=currency, type_=type_.value if type_ is not None else None
    )
    return account_list(page.rows, page.has_more)


# Balances


def balance_resource(account: AnyRow, counters: Counters, as_of: datetime | None) -> Balance:
    figures = BalanceFigures(AccountType(account["type"]), counters)
    return Balance(
        object="ledger.balance",
        account=account["id"],
        currency=account["currency"],
        as_of=unix_seconds_or_none(as_of),
        debits_posted=counters.debits_posted,
        credits_posted=counters.credits_posted,
        debits_pending=counters.debits_pending,
        credits_pending=counters.credits_pending,
        posted=figures.posted,
        pending=figures.pending,
        available=figures.available,
        livemode=account["livemode"],
    )


async def account_counters(connection: Connection, account_id: str, *, as_of: datetime | None, moment: datetime) -> Counters:
    """The four counters at `moment` (holds past their expiry already left out) or at `as_of`."""
    if as_of is not None:
        return repository.counters_of(await repository.counters_as_of(connection, account_id, as_of))
    stored = repository.counters_of(await repository.account_counters(connection, account_id))
    if stored.debits_pending == 0 and stored.credits_pending == 0:
        return stored
    due = await repository.due_hold_counters(connection, account_id, moment)
    return stored + -Counters(debits_pending=int(due["debits_pending"]), credits_pending=int(due["credits_pending"]))


async def balance(uow: UnitOfWork, account_id: str, as_of: datetime | None = None) -> Balance:
    account = await _account(uow, account_id)
    return balance_resource(account, await account_counters(uow.connection, account_id, as_of=as_of, moment=uow.now()), as_of)


async def balance_any_tenant(connection: Connection, account_id: str, *, as_of: datetime | None, moment: datetime) -> Balance:
    """An account's balance, whichever merchant (or the platform) holds it: for the
    operator's CLI, which connects as the owner."""
    account = await repository.get_account_any_tenant(connection, account_id) if is_id(account_id, "la") else None
    if account is None:
        raise ResourceMissing(f"No such ledger account: '{account_id}'", param="account")
    return balance_resource(account, await account_counters(connection, account_id, as_of=as_of, moment=moment), as_of)


async def statement(uow: UnitOfWork, account_id: str, *, limit: int, starting_after: str | None) -> Statement:
    """Posted entries on the account, oldest first, each with the balance after it."""
    account = await _account(uow, account_id)
    after: tuple[datetime, str] = (_BEGINNING, "")
    if starting_after is not None:
        moment = (
            await repository.posting_time(uow.connection, account_id, starting_after) if is_id(starting_after, "le") else None
        )
        if moment is None:
            raise ResourceMissing(f"No posted entry '{starting_after}' on this account", param="starting_after")
        after = (moment, starting_after)
    sign = 1 if AccountType(account["type"]).debit_normal else -1
    debits_before, credits_before = await repository.posted_before(uow.connection, account_id, after)
    opening = sign * int(debits_before - credits_before)
    rows = await repository.statement_lines(uow.connection, account_id, after, min(limit, LIMIT_MAX) + 1)
    running = opening
    lines: list[StatementLine] = []
    for row in rows[:limit]:
        debit, credit = int(row["debit_minor"]), int(row["credit_minor"])
        running += sign * (debit - credit)
        lines.append(
            StatementLine(
                entry=row["entry_id"],
                effective_at=unix_seconds(row["effective_at"]),
                debit_minor=debit,
                credit_minor=credit,
                balance_minor=running,
            )
        )
    return Statement(
        object="ledger.statement",
        account=account_id,
        currency=account["currency"],
        opening_balance_minor=opening,
        data=lines,
        has_more=len(rows) > limit,
    )
