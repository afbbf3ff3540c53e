"""All SQL of the ledger context.

API queries name their tenant ($1 merchant, $2 livemode) besides row-level security.
Reads that the operator's CLI makes over the whole journal pass a null merchant.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from bastion.ledger.domain import (
    PLATFORM_MERCHANT_ID,
    BalanceKey,
    Counters,
    Direction,
    EntryKind,
    HeldPosting,
    Limits,
    LockedAccount,
    Plan,
    PostingDraft,
)
from bastion.platform.db import AnyRow, Connection, Tenant
from bastion.platform.pagination import Page, PageRequest, fetch_page

_ALLOW_PLATFORM = "SELECT set_config('bastion.ledger_platform', 'on', true)"

_INSERT_ACCOUNT = """
WITH account AS (
    INSERT INTO ledger_accounts (id, merchant_id, livemode, currency, type, code, name, exchange,
        debits_must_not_exceed_credits, credits_must_not_exceed_debits, stripes, metadata, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT DO NOTHING
    RETURNING *
), balances AS (
    INSERT INTO ledger_balances (account_id, stripe, merchant_id, livemode, currency, stripes, exchange,
        debits_must_not_exceed_credits, credits_must_not_exceed_debits, closed,
        debits_posted, credits_posted, debits_pending, credits_pending)
    SELECT id, stripe, merchant_id, livemode, currency, stripes, exchange,
        debits_must_not_exceed_credits, credits_must_not_exceed_debits, false, 0, 0, 0, 0
    FROM account, generate_series(0, $11 - 1) AS stripe
)
SELECT * FROM account
"""
_ACCOUNT = "SELECT * FROM ledger_accounts WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_ACCOUNT_ANY_TENANT = "SELECT * FROM ledger_accounts WHERE id = $1"
_ACCOUNT_IDS_BY_CODE = "SELECT code, id FROM ledger_accounts WHERE merchant_id = $1 AND livemode = $2 AND code = ANY($3::text[])"
_EVERY_ACCOUNT_BY_CODE_PREFIX = """
SELECT merchant_id, livemode, code, id FROM ledger_accounts WHERE starts_with(code, $1) ORDER BY merchant_id, livemode, code
"""
_ACCOUNTS_BY_CODE_PREFIX = """
SELECT code, id FROM ledger_accounts WHERE merchant_id = $1 AND livemode = $2 AND starts_with(code, $3) ORDER BY code
"""
# Paged by fetch_page.
_LIST_ACCOUNTS = """
SELECT * FROM ledger_accounts WHERE merchant_id = $1 AND livemode = $2
AND ($3::text IS NULL OR code = $3) AND ($4::text IS NULL OR currency = $4) AND ($5::text IS NULL OR type = $5)
"""
_OWN_ACCOUNTS = "SELECT id FROM ledger_accounts WHERE merchant_id = $1 AND livemode = $2 AND id = ANY($3::text[])"
_ACCOUNT_EXISTS = "SELECT EXISTS (SELECT 1 FROM ledger_accounts WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
_LOCK_ACCOUNT_STRIPES = """
SELECT stripe FROM ledger_balances WHERE merchant_id = $1 AND livemode = $2 AND account_id = $3 ORDER BY stripe FOR UPDATE
"""
_CLOSE_ACCOUNT = """
WITH balances AS (
    UPDATE ledger_balances SET closed = true WHERE merchant_id = $1 AND livemode = $2 AND account_id = $3
)
UPDATE ledger_accounts SET closed_at = $4 WHERE merchant_id = $1 AND livemode = $2 AND id = $3 AND closed_at IS NULL
"""

# Every balance an entry touches, locked in (account, stripe) order: concurrent entries
# over the same accounts queue instead of deadlocking. A null stripe means "the stripe
# $5 picks", so that the writers of a hot account spread over its stripes.
_LOCK_BALANCES = f"""
SELECT b.* FROM ledger_balances b
JOIN unnest($3::text[], $4::smallint[]) AS t(account_id, stripe)
  ON b.account_id = t.account_id AND b.stripe = coalesce(t.stripe, $5::integer % b.stripes)
WHERE b.livemode = $2 AND (b.merchant_id = $1 OR ($6 AND b.merchant_id = '{PLATFORM_MERCHANT_ID}'))
ORDER BY b.account_id, b.stripe
FOR UPDATE OF b
"""

# One statement writes a whole batch: entries, postings, new holds and the balances
# (set to the values the service computed under the locks above).
_WRITE_JOURNAL = """
WITH entries AS (
    INSERT INTO ledger_entries (id, merchant_id, livemode, kind, reference, description, metadata, effective_at,
        created_at, expires_at, pending_entry_id, reverses_entry_id, fx_from, fx_to, fx_rate, fx_source, fx_quoted_at,
        actor, request_id)
    SELECT e.id, $1, $2, e.kind, e.reference, e.description, e.metadata, e.effective_at, $3, e.expires_at,
        e.pending_entry_id, e.reverses_entry_id, e.fx_from, e.fx_to, e.fx_rate, e.fx_source, e.fx_quoted_at, $4, $5
    FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::jsonb[], $11::timestamptz[], $12::timestamptz[],
        $13::text[], $14::text[], $15::text[], $16::text[], $17::numeric[], $18::text[], $19::timestamptz[])
        AS e(id, kind, reference, description, metadata, effective_at, expires_at, pending_entry_id, reverses_entry_id,
             fx_from, fx_to, fx_rate, fx_source, fx_quoted_at)
), postings AS (
    INSERT INTO ledger_postings (entry_id, idx, merchant_id, livemode, account_id, stripe, currency, amount_minor,
        is_credit, is_pending, effective_at)
    SELECT p.entry_id, p.idx, $1, $2, p.account_id, p.stripe, p.currency, p.amount_minor, p.is_credit, p.is_pending,
        p.effective_at
    FROM unnest($20::text[], $21::smallint[], $22::text[], $23::smallint[], $24::text[], $25::bigint[], $26::boolean[],
        $27::boolean[], $28::timestamptz[])
        AS p(entry_id, idx, account_id, stripe, currency, amount_minor, is_credit, is_pending, effective_at)
), holds AS (
    INSERT INTO ledger_open_holds (entry_id, merchant_id, livemode, expires_at)
    SELECT h.entry_id, $1, $2, h.expires_at FROM unnest($29::text[], $30::timestamptz[]) AS h(entry_id, expires_at)
)
UPDATE ledger_balances b
SET debits_posted = n.debits_posted, credits_posted = n.credits_posted,
    debits_pending = n.debits_pending, credits_pending = n.credits_pending
FROM unnest($31::text[], $32::smallint[], $33::bigint[], $34::bigint[], $35::bigint[], $36::bigint[])
    AS n(account_id, stripe, debits_posted, credits_posted, debits_pending, credits_pending)
WHERE b.account_id = n.account_id AND b.stripe = n.stripe
"""

# Entries with what later happened to them: the entry that resolved a hold, and its reversal.
_ENTRIES = """
SELECT e.*,
    (SELECT r.kind FROM ledger_entries r WHERE r.pending_entry_id = e.id) AS resolution,
    (SELECT r.id FROM ledger_entries r WHERE r.pending_entry_id = e.id) AS resolved_by,
    (SELECT v.id FROM ledger_entries v WHERE v.reverses_entry_id = e.id) AS reversed_by
FROM ledger_entries e WHERE e.merchant_id = $1 AND e.livemode = $2
"""
_ENTRY = f"{_ENTRIES} AND e.id = $3"
_ENTRIES_BY_REFERENCE = f"{_ENTRIES} AND e.reference = ANY($3::text[])"
_LIST_ENTRIES = f"""{_ENTRIES}
AND ($3::text IS NULL OR e.id IN (SELECT entry_id FROM ledger_postings WHERE account_id = $3 AND merchant_id = $1))
"""
_ENTRY_EXISTS = "SELECT EXISTS (SELECT 1 FROM ledger_entries WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
_POSTINGS_OF = """
SELECT * FROM ledger_postings WHERE merchant_id = $1 AND livemode = $2 AND entry_id = ANY($3::text[]) ORDER BY entry_id, idx
"""
_TAKE_OPEN_HOLD = "DELETE FROM ledger_open_holds WHERE merchant_id = $1 AND livemode = $2 AND entry_id = $3 RETURNING *"
_DUE_HOLDS = "SELECT * FROM ledger_open_holds WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2"

_ACCOUNT_COUNTERS = """
SELECT sum(debits_posted) AS debits_posted, sum(credits_posted) AS credits_posted,
       sum(debits_pending) AS debits_pending, sum(credits_pending) AS credits_pending
FROM ledger_balances WHERE account_id = $1
"""
# The postings of this tenant's holds past their expiry that touch any of $3.
_DUE_HOLD_POSTINGS = """
SELECT p.* FROM ledger_postings p
WHERE p.entry_id IN (
    SELECT h.entry_id FROM ledger_open_holds h
    WHERE h.merchant_id = $1 AND h.livemode = $2 AND h.expires_at <= $4
      AND EXISTS (SELECT 1 FROM ledger_postings q WHERE q.entry_id = h.entry_id AND q.account_id = ANY($3::text[]))
)
ORDER BY p.entry_id, p.idx
"""
_TRY_LOCK_BALANCES = """
SELECT b.* FROM ledger_balances b
JOIN unnest($1::text[], $2::smallint[]) AS t(account_id, stripe) ON b.account_id = t.account_id AND b.stripe = t.stripe
ORDER BY b.account_id, b.stripe
FOR UPDATE OF b SKIP LOCKED
"""
_TRY_TAKE_DUE_HOLD = """
DELETE FROM ledger_open_holds WHERE entry_id = (
    SELECT entry_id FROM ledger_open_holds
    WHERE merchant_id = $1 AND livemode = $2 AND entry_id = $3 AND expires_at <= $4
    FOR UPDATE SKIP LOCKED
)
RETURNING entry_id
"""
# Pending amounts of holds past their expiry that the job has not released yet: a read
# leaves them out at once.
_DUE_HOLD_COUNTERS = """
SELECT coalesce(sum(p.amount_minor) FILTER (WHERE NOT p.is_credit), 0) AS debits_pending,
       coalesce(sum(p.amount_minor) FILTER (WHERE p.is_credit), 0) AS credits_pending
FROM ledger_open_holds h JOIN ledger_postings p ON p.entry_id = h.entry_id
WHERE h.expires_at <= $2 AND p.account_id = $1
"""
# The four counters at $2 from the journal alone: posted entries effective by then, and
# holds made by then that were neither resolved nor expired by then.
_COUNTERS_AS_OF = """
SELECT coalesce(sum(p.amount_minor) FILTER (WHERE NOT p.is_pending AND NOT p.is_credit), 0) AS debits_posted,
       coalesce(sum(p.amount_minor) FILTER (WHERE NOT p.is_pending AND p.is_credit), 0) AS credits_posted,
       coalesce(sum(p.amount_minor) FILTER (WHERE p.is_pending AND NOT p.is_credit AND live.hold), 0) AS debits_pending,
       coalesce(sum(p.amount_minor) FILTER (WHERE p.is_pending AND p.is_credit AND live.hold), 0) AS credits_pending
FROM ledger_postings p
CROSS JOIN LATERAL (
    SELECT p.is_pending
       AND (SELECT h.expires_at FROM ledger_entries h WHERE h.id = p.entry_id) > $2
       AND NOT EXISTS (SELECT 1 FROM ledger_entries r WHERE r.pending_entry_id = p.entry_id AND r.effective_at <= $2)
       AS hold
) live
WHERE p.account_id = $1 AND p.effective_at <= $2
"""
# Statement lines: the account's posted postings netted per entry, oldest first.
_STATEMENT_LINES = """
SELECT p.entry_id, p.effective_at,
       coalesce(sum(p.amount_minor) FILTER (WHERE NOT p.is_credit), 0) AS debit_minor,
       coalesce(sum(p.amount_minor) FILTER (WHERE p.is_credit), 0) AS credit_minor
FROM ledger_postings p
WHERE p.account_id = $1 AND NOT p.is_pending AND (p.effective_at, p.entry_id) > ($2, $3)
GROUP BY p.effective_at, p.entry_id
ORDER BY p.effective_at, p.entry_id
LIMIT $4
"""
_POSTED_BEFORE = """
SELECT coalesce(sum(amount_minor) FILTER (WHERE NOT is_credit), 0) AS debits,
       coalesce(sum(amount_minor) FILTER (WHERE is_credit), 0) AS credits
FROM ledger_postings WHERE account_id = $1 AND NOT is_pending AND (effective_at, entry_id) <= ($2, $3)
"""
_POSTING_TIME = "SELECT effective_at FROM ledger_postings WHERE account_id = $1 AND entry_id = $2 AND NOT is_pending LIMIT 1"


async def allow_platform_accounts(connection: Connection) -> None:
    """Let this transaction see the platform's accounts (row-level security, see the migration)."""
    await connection.execute(_ALLOW_PLATFORM)


async def insert_account(connection: Connection, merchant_id: str, livemode: bool, values: dict[str, Any]) -> AnyRow | None:
    """The new account with its zeroed balance stripes, or None if its code is taken."""
    row: AnyRow | None = await connection.fetchrow(
        _INSERT_ACCOUNT,
        values["id"],
        merchant_id,
        livemode,
        values["currency"],
        values["type"],
        values["code"],
        values["name"],
        values["exchange"],
        values["debits_must_not_exceed_credits"],
        values["credits_must_not_exceed_debits"],
        values["stripes"],
        values["metadata"],
        values["created_at"],
    )
    return row


async def account_ids_by_code(connection: Connection, merchant_id: str, livemode: bool, codes: list[str]) -> dict[str, str]:
    """code -> id of the accounts among `codes` that exist."""
    return {row["code"]: row["id"] for row in await connection.fetch(_ACCOUNT_IDS_BY_CODE, merchant_id, livemode, codes)}


async def every_account_by_code_prefix(connection: Connection, prefix: str) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_EVERY_ACCOUNT_BY_CODE_PREFIX, prefix)
    return rows


async def accounts_by_code_prefix(connection: Connection, tenant: Tenant, prefix: str) -> dict[str, str]:
    return {
        row["code"]: row["id"]
        for row in await connection.fetch(_ACCOUNTS_BY_CODE_PREFIX, tenant.merchant_id, tenant.livemode, prefix)
    }


async def get_account(connection: Connection, tenant: Tenant, account_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_ACCOUNT, tenant.merchant_id, tenant.livemode, account_id)
    return row


async def get_account_any_tenant(connection: Connection, account_id: str) -> AnyRow | None:
    """For the operator's CLI, which runs as the owner over every tenant."""
    row: AnyRow | None = await connection.fetchrow(_ACCOUNT_ANY_TENANT, account_id)
    return row


async def foreign_accounts(connection: Connection, tenant: Tenant, account_ids: Sequence[str]) -> list[str]:
    """Those of `account_ids` that are not the tenant's: the platform's, for an entry of the tenant's."""
    own = {row["id"] for row in await connection.fetch(_OWN_ACCOUNTS, tenant.merchant_id, tenant.livemode, list(account_ids))}
    return sorted(set(account_ids) - own)


async def account_exists(connection: Connection, tenant: Tenant, account_id: str) -> bool:
    return bool(await connection.fetchval(_ACCOUNT_EXISTS, tenant.merchant_id, tenant.livemode, account_id))


async def page_accounts(
    connection: Connection, tenant: Tenant, request: PageRequest, *, code: str | None, currency: str | None, type_: str | None
) -> Page:
    return await fetch_page(connection, _LIST_ACCOUNTS, (tenant.merchant_id, tenant.livemode, code, currency, type_), request)


async def close_account(connection: Connection, tenant: Tenant, account_id: str, closed_at: datetime) -> None:
    """Lock every stripe first, in order, like a posting does: no entry commits to it after this."""
    await connection.fetch(_LOCK_ACCOUNT_STRIPES, tenant.merchant_id, tenant.livemode, account_id)
    await connection.execute(_CLOSE_ACCOUNT, tenant.merchant_id, tenant.livemode, account_id, closed_at)


async def lock_balances(
    connection: Connection,
    tenant: Tenant,
    targets: Sequence[tuple[str, int | None]],
    *,
    stripe_seed: int,
    platform: bool,
) -> list[AnyRow]:
    return list(
        await connection.fetch(
            _LOCK_BALANCES,
            tenant.merchant_id,
            tenant.livemode,
            [account_id for account_id, _ in targets],
            [stripe for _, stripe in targets],
            stripe_seed,
            platform,
        )
    )


async def write_journal(
    connection: Connection,
    tenant: Tenant,
    *,
    plans: Sequence[Plan],
    balances: Mapping[BalanceKey, Counters],
    accounts: Mapping[str, LockedAccount],
    seed: int,
    created_at: datetime,
    actor: str,
    request_id: str | None,
) -> None:
    """Write the entries of `plans`, their postings and new holds, and the new `balances`,
    in one statement. Each row below lists its values in the order of its `unnest` in
    `_WRITE_JOURNAL` (e, p, h, n), and `unnest` takes them as columns."""
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
                accounts[posting.account_id].stripe(stripe, seed),
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
    new_balances = [(account_id, stripe, *counters.values()) for (account_id, stripe), counters in balances.items()]
    await connection.execute(
        _WRITE_JOURNAL,
        tenant.merchant_id,
        tenant.livemode,
        created_at,
        actor,
        request_id,
        *_columns(entries, 14),
        *_columns(postings, 9),
        *_columns(holds, 2),
        *_columns(new_balances, 6),
    )


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as the `width` columns `unnest` takes."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


async def get_entry(connection: Connection, tenant: Tenant, entry_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_ENTRY, tenant.merchant_id, tenant.livemode, entry_id)
    return row


async def entries_by_reference(connection: Connection, tenant: Tenant, references: Sequence[str]) -> list[AnyRow]:
    return list(await connection.fetch(_ENTRIES_BY_REFERENCE, tenant.merchant_id, tenant.livemode, list(references)))


async def entry_exists(connection: Connection, tenant: Tenant, entry_id: str) -> bool:
    return bool(await connection.fetchval(_ENTRY_EXISTS, tenant.merchant_id, tenant.livemode, entry_id))


async def page_entries(connection: Connection, tenant: Tenant, request: PageRequest, account_id: str | None) -> Page:
    return await fetch_page(connection, _LIST_ENTRIES, (tenant.merchant_id, tenant.livemode, account_id), request)


async def postings_of(connection: Connection, tenant: Tenant, entry_ids: Sequence[str]) -> list[AnyRow]:
    return list(await connection.fetch(_POSTINGS_OF, tenant.merchant_id, tenant.livemode, list(entry_ids)))


async def take_open_hold(connection: Connection, tenant: Tenant, entry_id: str) -> AnyRow | None:
    """Remove a hold from the open set, or None if it is not open: the row lock makes
    concurrent posts, voids and expiries of one hold queue, and only the first wins."""
    row: AnyRow | None = await connection.fetchrow(_TAKE_OPEN_HOLD, tenant.merchant_id, tenant.livemode, entry_id)
    return row


async def due_hold_postings(connection: Connection, tenant: Tenant, account_ids: Sequence[str], moment: datetime) -> list[AnyRow]:
    return list(await connection.fetch(_DUE_HOLD_POSTINGS, tenant.merchant_id, tenant.livemode, list(account_ids), moment))


async def try_lock_balances(connection: Connection, targets: Sequence[tuple[str, int]]) -> list[AnyRow]:
    """Lock those balance rows that no other transaction holds; never waits."""
    return list(
        await connection.fetch(_TRY_LOCK_BALANCES, [account_id for account_id, _ in targets], [stripe for _, stripe in targets])
    )


async def try_take_due_hold(connection: Connection, tenant: Tenant, entry_id: str, moment: datetime) -> bool:
    """Take a due hold off the open set, unless another transaction holds it; never waits."""
    return await connection.fetchval(_TRY_TAKE_DUE_HOLD, tenant.merchant_id, tenant.livemode, entry_id, moment) is not None


async def due_holds(connection: Connection, moment: datetime, limit: int) -> list[AnyRow]:
    return list(await connection.fetch(_DUE_HOLDS, moment, limit))


async def account_counters(connection: Connection, account_id: str) -> AnyRow:
    row: AnyRow = await connection.fetchrow(_ACCOUNT_COUNTERS, account_id)
    return row


async def due_hold_counters(connection: Connection, account_id: str, moment: datetime) -> AnyRow:
    row: AnyRow = await connection.fetchrow(_DUE_HOLD_COUNTERS, account_id, moment)
    return row


async def counters_as_of(connection: Connection, account_id: str, as_of: datetime) -> AnyRow:
    row: AnyRow = await connection.fetchrow(_COUNTERS_AS_OF, account_id, as_of)
    return row


async def posting_time(connection: Connection, account_id: str, entry_id: str) -> datetime | None:
    moment: datetime | None = await connection.fetchval(_POSTING_TIME, account_id, entry_id)
    return moment


async def statement_lines(connection: Connection, account_id: str, after: tuple[datetime, str], limit: int) -> list[AnyRow]:
    return list(await connection.fetch(_STATEMENT_LINES, account_id, after[0], after[1], limit))


async def posted_before(connection: Connection, account_id: str, through: tuple[datetime, str]) -> tuple[Decimal, Decimal]:
    row = await connection.fetchrow(_POSTED_BEFORE, account_id, through[0], through[1])
    return row["debits"], row["credits"]


# Rows as the domain's values


def counters_of(row: AnyRow) -> Counters:
    # Sums over stripes come back as numeric; every value is a whole number of minor units.
    return Counters(
        int(row["debits_posted"] or 0),
        int(row["credits_posted"] or 0),
        int(row["debits_pending"] or 0),
        int(row["credits_pending"] or 0),
    )


def locked_account(balance: AnyRow) -> LockedAccount:
    """The account as its balance row carries it (a copy of the account's rules, kept in step)."""
    limits = Limits(balance["debits_must_not_exceed_credits"], balance["credits_must_not_exceed_debits"])
    return LockedAccount(balance["currency"], balance["exchange"], balance["closed"], balance["stripes"], limits)


def _direction(posting: AnyRow) -> Direction:
    return "credit" if posting["is_credit"] else "debit"


def posting_draft(row: AnyRow) -> PostingDraft:
    return PostingDraft(row["account_id"], _direction(row), row["amount_minor"], row["currency"])


def held_posting(row: AnyRow) -> HeldPosting:
    return HeldPosting(row["account_id"], row["stripe"], _direction(row), row["amount_minor"], row["currency"])
