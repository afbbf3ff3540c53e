"""`bastion ledger` as real processes: balances of any tenant's account now and as of a
past moment, platform accounts, expected failures as one `error:` line, and `ledger
check` passing on a healthy journal and naming the first fault after each kind of
tampering. Tampering runs on a private database per case, never on the session's."""

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from bastion import bootstrap, ledger
from bastion.kernel.ids import new_id
from bastion.merchants import create_merchant
from bastion.platform.db import Actor, Database, Tenant, UnitOfWork
from tests.support.cli import Ran, run_bastion
from tests.support.ledger import create_account, get_balance, transfer
from tests.support.platform import Credentials, Platform
from tests.support.postgres import TestDatabase

pytestmark = pytest.mark.processes

_ACTOR = Actor(id="test")


async def _cli_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    ran = await run_bastion(*args, "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    printed: dict[str, Any] = json.loads(ran.stdout)
    return printed


def _one_error_line(ran: Ran) -> str:
    assert ran.returncode == 1, (ran.stdout, ran.stderr)
    assert ran.stdout == ""
    lines = ran.stderr.splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# --- balance ----------------------------------------------------------------------------


async def test_balance_now_and_as_of_a_past_moment(
    test_database: TestDatabase, platform: Platform, merchant: Credentials
) -> None:
    an_hour_ago = int(time.time()) - 3600
    half_an_hour_ago = an_hour_ago + 1800
    async with platform.client(merchant) as client:
        cash = await create_account(client)
        wallet = await create_account(client, type="liability")
        for body in (
            transfer(cash, wallet, 1_000, effective_at=an_hour_ago),
            transfer(cash, wallet, 250),
            transfer(wallet, cash, 300, pending=True, timeout_s=3600),
        ):
            response = await client.post("/v1/ledger/entries", json=body)
            assert response.status_code == 200, response.text
        api_now = await get_balance(client, wallet)
        api_then = await get_balance(client, wallet, as_of=half_an_hour_ago)
    env = test_database.env()

    now = await _cli_json(env, "ledger", "balance", wallet)
    assert now == api_now
    assert (now["posted"], now["pending"], now["available"], now["currency"]) == (1_250, -300, 950, "USD")
    assert (now["debits_posted"], now["credits_posted"], now["debits_pending"], now["credits_pending"]) == (0, 1_250, 300, 0)

    moment = datetime.fromtimestamp(half_an_hour_ago, UTC).astimezone(timezone(timedelta(hours=1)))
    then = await _cli_json(env, "ledger", "balance", wallet, "--as-of", moment.isoformat())
    assert then == api_then
    assert (then["posted"], then["pending"], then["available"], then["as_of"]) == (1_000, 0, 1_000, half_an_hour_ago)

    text = await run_bastion("ledger", "balance", wallet, "--as-of", str(an_hour_ago - 1), env=env)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    for line in ("posted: 0", "pending: 0", "available: 0", "credits_posted: 0", "currency: USD"):
        assert line in lines, text.stdout


async def test_platform_accounts_are_created_and_read_as_the_owner(
    test_database: TestDatabase, platform: Platform, merchant: Credentials
) -> None:
    env = test_database.env()
    code = f"fees-{new_id('la')[-8:]}"
    created = await run_bastion("ledger", "create-account", "--currency", "USD", "--type", "revenue", "--code", code, env=env)
    assert created.returncode == 0, created.stderr
    fees = created.stdout.strip()
    assert fees.startswith("la_")
    live = await run_bastion(
        "ledger", "create-account", "--currency", "EUR", "--type", "liability", "--stripes", "4", "--live", env=env
    )
    assert live.returncode == 0, live.stderr
    async with platform.owner.transaction() as connection:
        rows = await connection.fetch(
            "SELECT id, merchant_id, livemode, currency, type, code, stripes FROM ledger_accounts WHERE id = ANY($1::text[])",
            [fees, live.stdout.strip()],
        )
    assert {tuple(row) for row in rows} == {
        (fees, ledger.PLATFORM_MERCHANT_ID, False, "USD", "revenue", code, 1),
        (live.stdout.strip(), ledger.PLATFORM_MERCHANT_ID, True, "EUR", "liability", None, 4),
    }

    # A merchant's payment credits the platform's fee account through the facade, as a payment would.
    async with platform.client(merchant) as client:
        cash = await create_account(client)
        wallet = await create_account(client, type="liability")
    draft = ledger.EntryDraft(
        postings=(
            ledger.PostingDraft(cash, "debit", 1_000, "USD"),
            ledger.PostingDraft(wallet, "credit", 970, "USD"),
            ledger.PostingDraft(fees, "credit", 30, "USD"),
        )
    )
    async with platform.services.database.unit_of_work(Tenant(merchant.merchant_id, livemode=False), _ACTOR) as uow:
        await ledger.post_entry(uow, draft, platform=True)
    fee_balance = await _cli_json(env, "ledger", "balance", fees)
    assert (fee_balance["posted"], fee_balance["credits_posted"], fee_balance["livemode"]) == (30, 30, False)

    again = await run_bastion("ledger", "create-account", "--currency", "USD", "--type", "revenue", "--code", code, env=env)
    assert f"A ledger account with code '{code}' already exists" in _one_error_line(again)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("balance", "{account}", "--as-of", "yesterday"), "neither an ISO 8601 time nor Unix seconds"),
        (("balance", "{account}", "--as-of", "2026-11-23T12:00:00"), "has no timezone"),
        (("balance", "{account}", "--as-of", "99999999999999999999"), "neither an ISO 8601 time nor Unix seconds"),
        (("balance", "{account}"), "No such ledger account"),
        (("balance", "cus_nope", "--as-of", "0"), "No such ledger account: 'cus_nope'"),
        (("create-account", "--currency", "ZZZ", "--type", "revenue"), "Unknown or unsupported currency 'ZZZ'"),
        (("create-account", "--currency", "USD", "--type", "revenue", "--stripes", "0"), "stripes must be 1 to 64"),
    ],
    ids=["words", "naive-time", "time-out-of-range", "unknown-account", "malformed-account", "bad-currency", "no-stripes"],
)
async def test_errors_are_one_line(test_database: TestDatabase, args: tuple[str, ...], expected: str) -> None:
    filled = [arg.format(account=new_id("la")) for arg in args]
    assert expected in _one_error_line(await run_bastion("ledger", *filled, env=test_database.env()))


# --- check ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Books:
    """A private database with a journal of every kind of entry, and their ids by name."""

    database: TestDatabase
    owner: Database
    ids: dict[str, str]

    async def check(self, *options: str) -> Ran:
        return await run_bastion("ledger", "check", *options, env=self.database.env())


async def _account(uow: UnitOfWork, currency: str, type_: ledger.AccountType, **fields: Any) -> str:
    account_id: str = (await ledger.create_account(uow, ledger.AccountDraft(currency=currency, type=type_, **fields)))["id"]
    return account_id


def _move(debit: str, credit: str, amount: int, currency: str = "USD") -> tuple[ledger.PostingDraft, ...]:
    return (ledger.PostingDraft(debit, "debit", amount, currency), ledger.PostingDraft(credit, "credit", amount, currency))


async def _journal(owner: Database) -> dict[str, str]:
    """Standard, striped, platform, FX and backdated entries, open, posted and voided holds, a reversal."""
    merchant_id = new_id("mer")
    tenant = Tenant(merchant_id, livemode=False)
    async with owner.unit_of_work(tenant, _ACTOR) as uow:
        await create_merchant(uow, "Books")
    async with owner.unit_of_work(Tenant(ledger.PLATFORM_MERCHANT_ID, livemode=False), _ACTOR) as uow:
        fees = await _account(uow, "USD", ledger.AccountType.REVENUE)
    async with owner.unit_of_work(tenant, _ACTOR) as uow:
        cash = await _account(uow, "USD", ledger.AccountType.ASSET)
        hot = await _account(uow, "USD", ledger.AccountType.ASSET, stripes=4)
        wallet = await _account(uow, "USD", ledger.AccountType.LIABILITY, debits_must_not_exceed_credits=True)
        fx_usd = await _account(uow, "USD", ledger.AccountType.EQUITY, exchange=True)
        fx_eur = await _account(uow, "EUR", ledger.AccountType.EQUITY, exchange=True)
        savings = await _account(uow, "EUR", ledger.AccountType.LIABILITY)
    async with owner.unit_of_work(tenant, _ACTOR) as uow:
        yesterday = datetime.now(UTC) - timedelta(days=1)
        deposit = await ledger.post_entry(uow, ledger.EntryDraft(postings=_move(cash, wallet, 10_000), effective_at=yesterday))
        fee_postings = (
            ledger.PostingDraft(wallet, "debit", 1_000, "USD"),
            ledger.PostingDraft(hot, "credit", 970, "USD"),
            ledger.PostingDraft(fees, "credit", 30, "USD"),
        )
        with_fee = await ledger.post_entry(uow, ledger.EntryDraft(postings=fee_postings), platform=True)
        fx = ledger.FxQuote("USD", "EUR", Decimal("0.9"), "test", yesterday)
        await ledger.post_entry(
            uow, ledger.EntryDraft(postings=(*_move(fx_usd, wallet, 1_000), *_move(savings, fx_eur, 900, "EUR")), fx=fx)
        )
        hold = await ledger.post_entry(uow, ledger.EntryDraft(postings=_move(wallet, cash, 500), pending=True, timeout_s=3600))
        posted_hold = await ledger.post_entry(uow, ledger.EntryDraft(postings=_move(wallet, hot, 400), pending=True))
        await ledger.post_pending(uow, posted_hold["id"], 250)
        voided_hold = await ledger.post_entry(uow, ledger.EntryDraft(postings=_move(wallet, cash, 300), pending=True))
        await ledger.void_pending(uow, voided_hold["id"])
        await ledger.reverse_entry(uow, with_fee["id"], platform=True)
    return {
        "merchant": merchant_id,
        "cash": cash,
        "wallet": wallet,
        "deposit": deposit["id"],
        "hold": hold["id"],
        "voided_hold": voided_hold["id"],
        "new": new_id("le"),
    }


@pytest.fixture
async def books(private_database: TestDatabase) -> AsyncIterator[Books]:
    owner = bootstrap.owner_database(private_database.owner_url)
    try:
        yield Books(private_database, owner, await _journal(owner))
    finally:
        await owner.dispose()


async def test_check_passes_on_a_healthy_journal_and_fails_in_one_line(books: Books) -> None:
    ran = await books.check()
    assert ran.returncode == 0, ran.stderr
    # 3 posted entries, 3 holds, a post, a void and a reversal; 2+3+4+2+2+2+2+0+3 postings; 6 accounts and the platform's.
    assert ran.stdout == "ledger consistent: 9 entries, 20 postings, 7 accounts checked\n"
    assert json.loads((await books.check("--json")).stdout) == {"ok": True, "entries": 9, "postings": 20, "accounts": 7}

    async with books.owner.transaction() as connection:
        await connection.execute("DELETE FROM ledger_open_holds WHERE entry_id = $1", books.ids["hold"])
    line = _one_error_line(await books.check())
    assert (
        line == f"error: ledger check failed (open_holds): hold {books.ids['hold']} is unresolved but missing from the open holds"
    )


_POSTINGS_EDITABLE = "ALTER TABLE ledger_postings DISABLE TRIGGER ledger_postings_append_only"


def _forged(kind: str, target: str = "NULL", credit_minor: int | None = None) -> list[str]:
    """Statements that insert entry {new} of `kind` resolving `target`, with two postings
    (100 debited, `credit_minor` credited) unless `credit_minor` is None, past the deferred check."""
    statements = [
        "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entry_balanced",
        "INSERT INTO ledger_entries (id, merchant_id, livemode, kind, metadata, effective_at, created_at, actor, "
        f"pending_entry_id) VALUES ('{{new}}', '{{merchant}}', false, '{kind}', '{{{{}}}}', now(), now(), 'tamper', {target})",
    ]
    if credit_minor is not None:
        statements.append(
            "INSERT INTO ledger_postings (entry_id, idx, merchant_id, livemode, account_id, stripe, currency, amount_minor, "
            "is_credit, is_pending, effective_at) VALUES "
            "('{new}', 0, '{merchant}', false, '{cash}', 0, 'USD', 100, false, false, now()), "
            f"('{{new}}', 1, '{{merchant}}', false, '{{wallet}}', 0, 'USD', {credit_minor}, true, false, now())"
        )
    return statements


@pytest.mark.parametrize(
    ("statements", "invariant", "named", "expected"),
    [
        (
            ["UPDATE ledger_balances SET credits_posted = credits_posted + 1 WHERE account_id = '{wallet}'"],
            "balance_matches_journal",
            {"account": "wallet"},
            "account {wallet} stores credits_posted 12001, but its postings sum to 12000",
        ),
        (
            _forged("standard", credit_minor=90),
            "entry_balanced",
            {"entry": "new"},
            "entry {new} does not balance in USD: debits exceed credits by 10 minor units",
        ),
        (
            [
                _POSTINGS_EDITABLE,
                "UPDATE ledger_postings SET amount_minor = amount_minor + 1 WHERE entry_id = '{deposit}' AND idx = 1",
            ],
            "entry_balanced",
            {"entry": "deposit"},
            "entry {deposit} does not balance in USD: credits exceed debits by 1 minor units",
        ),
        (
            [_POSTINGS_EDITABLE, "UPDATE ledger_postings SET currency = 'EUR' WHERE entry_id = '{deposit}'"],
            "posting_currency",
            {"entry": "deposit", "account": "cash"},
            "posting 0 of entry {deposit} is in EUR, but its account {cash} holds USD",
        ),
        (
            _forged("void_pending", "'{hold}'", credit_minor=100),
            "posting_count",
            {"entry": "new"},
            "entry {new} of type void_pending has 2 postings, not none",
        ),
        (
            [
                "INSERT INTO ledger_open_holds (entry_id, merchant_id, livemode, expires_at) "
                "SELECT id, merchant_id, livemode, expires_at FROM ledger_entries WHERE id = '{voided_hold}'"
            ],
            "open_holds",
            {"entry": "voided_hold"},
            "hold {voided_hold} was resolved by le_",
        ),
        (
            ["UPDATE ledger_accounts SET debits_must_not_exceed_credits = true WHERE id = '{cash}'"],
            "balance_limit",
            {"account": "cash"},
            "account {cash} (stripe 0) breaks debits_must_not_exceed_credits: "
            "debits posted and pending 10000 exceed credits posted 0",
        ),
        (
            _forged("void_pending", "'{deposit}'"),
            "entry_link",
            {"entry": "new"},
            "entry {new} of type void_pending points to {deposit}, an entry of type standard, not a hold of its tenant",
        ),
    ],
    ids=[
        "balance-row-edited",
        "unbalanced-entry-inserted",
        "posting-amount-edited",
        "posting-currency-edited",
        "void-with-postings",
        "resolved-hold-listed-open",
        "limit-flag-set-on-a-breaking-account",
        "void-of-a-standard-entry",
    ],
)
async def test_check_names_the_first_fault(
    books: Books, statements: list[str], invariant: str, named: dict[str, str], expected: str
) -> None:
    ids = books.ids
    async with books.owner.transaction() as connection:
        for statement in statements:
            await connection.execute(statement.format(**ids))

    ran = await books.check("--json")
    assert ran.returncode == 1, ran.stderr
    report = json.loads(ran.stdout)
    assert (report["ok"], report["invariant"]) == (False, invariant)
    assert expected.format(**ids) in report["message"]
    assert {field: report[field] for field in ("entry", "account") if report[field] is not None} == {
        field: ids[name] for field, name in named.items()
    }
