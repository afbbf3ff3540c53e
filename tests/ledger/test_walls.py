"""The ledger's walls in PostgreSQL itself, behind the service's own checks: the journal
is append-only for every role (the owner included), an entry that does not balance, has
one posting or posts in another currency than its account's cannot commit, a balance
row cannot break its account's limit, and row-level security keeps a merchant to its
own books and away from the platform's accounts unless the ledger facade lets it in.

Whatever a test here writes as the owner is rolled back, or keeps the journal consistent."""

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from asyncpg.exceptions import CheckViolationError, InsufficientPrivilegeError

from bastion import ledger
from bastion.kernel.ids import new_id
from bastion.platform.db import Actor, Connection, Database, Tenant
from tests.support.ledger import create_account, transfer
from tests.support.platform import Credentials, Platform

_LEDGER_TABLES = ("ledger_accounts", "ledger_balances", "ledger_entries", "ledger_postings", "ledger_open_holds")
_ALLOW_PLATFORM = "SELECT set_config('bastion.ledger_platform', 'on', true)"
_INSERT_ENTRY = """
INSERT INTO ledger_entries (id, merchant_id, livemode, kind, metadata, effective_at, created_at, actor)
VALUES ($1, $2, false, 'standard', '{}', now(), now(), 'test')
"""
_INSERT_POSTING = """
INSERT INTO ledger_postings (entry_id, idx, merchant_id, livemode, account_id, stripe, currency, amount_minor,
    is_credit, is_pending, effective_at)
VALUES ($1, $2, $3, false, $4, 0, $5, $6, $7, false, now())
"""
_ADD_TO_BALANCE = """
UPDATE ledger_balances SET debits_posted = debits_posted + $3, credits_posted = credits_posted + $4
WHERE account_id = $1 AND stripe = $2
"""


@dataclass(frozen=True)
class Books:
    """A merchant's accounts (USD cash, a USD wallet that may not go below zero, EUR
    cash) with a deposit and a hold between them."""

    merchant_id: str
    cash: str
    wallet: str
    euros: str
    deposit: str
    hold: str


async def _books(platform: Platform, credentials: Credentials) -> Books:
    async with platform.client(credentials) as client:
        cash = await create_account(client)
        wallet = await create_account(client, type="liability", flags={"debits_must_not_exceed_credits": True})
        euros = await create_account(client, "EUR")
        deposit = await client.post("/v1/ledger/entries", json=transfer(cash, wallet, 1_000))
        hold = await client.post("/v1/ledger/entries", json=transfer(wallet, cash, 300, pending=True))
    assert deposit.status_code == hold.status_code == 200, (deposit.text, hold.text)
    return Books(credentials.merchant_id, cash, wallet, euros, deposit.json()["id"], hold.json()["id"])


@pytest.fixture
async def books(platform: Platform, merchant: Credentials) -> Books:
    return await _books(platform, merchant)


@asynccontextmanager
async def _rolled_back(database: Database) -> AsyncIterator[Connection]:
    """A transaction that is rolled back whatever happens in it."""
    async with database.connection() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            yield connection
        finally:
            await transaction.rollback()


# --- append-only ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["app", "worker"])
@pytest.mark.parametrize(
    ("statement", "table"),
    [
        ("UPDATE ledger_entries SET description = 'forged'", "ledger_entries"),
        ("DELETE FROM ledger_entries", "ledger_entries"),
        ("UPDATE ledger_postings SET amount_minor = 1", "ledger_postings"),
        ("DELETE FROM ledger_postings", "ledger_postings"),
        ("TRUNCATE ledger_postings", "ledger_postings"),
    ],
)
async def test_service_roles_may_not_edit_the_journal(
    platform: Platform, worker_database: Database, role: str, statement: str, table: str
) -> None:
    database = platform.services.database if role == "app" else worker_database
    with pytest.raises(InsufficientPrivilegeError, match=f"permission denied for table {table}"):
        async with _rolled_back(database) as connection:
            await connection.execute(statement)


@pytest.mark.parametrize(
    ("statement", "refused"),
    [
        ("UPDATE ledger_entries SET description = 'forged' WHERE id = $1", "UPDATE on ledger_entries"),
        ("DELETE FROM ledger_entries WHERE id = $1", "DELETE on ledger_entries"),
        ("UPDATE ledger_postings SET amount_minor = amount_minor + 1 WHERE entry_id = $1", "UPDATE on ledger_postings"),
        ("DELETE FROM ledger_postings WHERE entry_id = $1", "DELETE on ledger_postings"),
        ("TRUNCATE ledger_postings", "TRUNCATE on ledger_postings"),
        # CASCADE: without it, the foreign keys of postings and holds refuse before the trigger is asked.
        ("TRUNCATE ledger_entries CASCADE", "TRUNCATE on ledger_"),
    ],
)
async def test_even_the_owner_may_not_edit_the_journal(platform: Platform, books: Books, statement: str, refused: str) -> None:
    args = [books.deposit] if "$1" in statement else []
    with pytest.raises(InsufficientPrivilegeError, match=f"the ledger journal is append-only: {refused}"):
        async with _rolled_back(platform.owner) as connection:
            await connection.execute(statement, *args)
    async with platform.owner.transaction() as connection:
        assert await connection.fetchval("SELECT count(*) FROM ledger_postings WHERE entry_id = $1", books.deposit) == 2


# --- what cannot commit -----------------------------------------------------------------

# (account, currency, amount_minor, is_credit) per posting.
Posting = tuple[str, str, int, bool]


async def _insert_entry(connection: Connection, merchant_id: str, postings: Sequence[Posting]) -> str:
    entry_id = new_id("le")
    await connection.execute(_INSERT_ENTRY, entry_id, merchant_id)
    for index, (account, currency, amount_minor, is_credit) in enumerate(postings):
        await connection.execute(_INSERT_POSTING, entry_id, index, merchant_id, account, currency, amount_minor, is_credit)
    return entry_id


@pytest.mark.parametrize(
    ("postings", "message"),
    [
        (lambda b: [(b.cash, "USD", 100, False), (b.wallet, "USD", 90, True)], "does not balance in USD"),
        (lambda b: [(b.cash, "USD", 100, False), (b.euros, "EUR", 100, True)], "does not balance in"),
        (lambda b: [(b.cash, "USD", 100, False)], "has 1 postings, not 2 to 128"),
        (
            lambda b: [(b.cash, "EUR", 100, False), (b.euros, "EUR", 100, True)],
            "posts to an unknown account or in another currency than its account",
        ),
        (
            lambda b: [(b.cash, "USD", 100, False), (new_id("la"), "USD", 100, True)],
            "posts to an unknown account or in another currency than its account",
        ),
    ],
    ids=["unbalanced", "one-leg-per-currency", "one-posting", "currency-of-another-account", "unknown-account"],
)
async def test_a_bad_entry_is_refused_at_commit(
    platform: Platform, books: Books, postings: Callable[[Books], list[Posting]], message: str
) -> None:
    async with platform.owner.connection() as connection:
        transaction = connection.transaction()
        await transaction.start()
        # The statements pass: the deferred constraint trigger judges the entry as a whole, at commit.
        entry_id = await _insert_entry(connection, books.merchant_id, postings(books))
        with pytest.raises(CheckViolationError, match=f"ledger entry {entry_id} {message}"):
            await transaction.commit()
        assert await connection.fetchval("SELECT count(*) FROM ledger_entries WHERE id = $1", entry_id) == 0


async def test_a_balanced_entry_commits(platform: Platform, books: Books) -> None:
    async with platform.owner.transaction() as connection:
        entry_id = await _insert_entry(
            connection, books.merchant_id, [(books.cash, "USD", 100, False), (books.wallet, "USD", 100, True)]
        )
        # The balances move with it, so that the session's journal stays consistent.
        await connection.execute(_ADD_TO_BALANCE, books.cash, 0, 100, 0)
        await connection.execute(_ADD_TO_BALANCE, books.wallet, 0, 0, 100)
    async with platform.owner.transaction() as connection:
        assert await connection.fetchval("SELECT count(*) FROM ledger_postings WHERE entry_id = $1", entry_id) == 2


@pytest.mark.parametrize("role", ["owner", "app"])
async def test_a_balance_row_may_not_break_its_accounts_limit(platform: Platform, books: Books, role: str) -> None:
    # The wallet holds 1,000 with a hold of 300 against it: 701 more debits would go below zero.
    breaking = "UPDATE ledger_balances SET debits_posted = debits_posted + 701 WHERE account_id = $1"
    if role == "owner":
        with pytest.raises(CheckViolationError, match="ck_ledger_balances_debits_within_credits"):
            async with _rolled_back(platform.owner) as connection:
                await connection.execute(breaking, books.wallet)
        return
    tenant = Tenant(books.merchant_id, livemode=False)
    with pytest.raises(CheckViolationError, match="ck_ledger_balances_debits_within_credits"):
        async with platform.services.database.unit_of_work(tenant, Actor(id="test")) as uow:
            await uow.connection.execute(breaking, books.wallet)
    async with _rolled_back(platform.owner) as connection:
        within = await connection.execute(breaking.replace("701", "700"), books.wallet)
    assert within == "UPDATE 1"


# --- row-level security -----------------------------------------------------------------


async def _counts(connection: Connection, merchant_id: str) -> dict[str, int]:
    return {
        # A table name from the constant above; the merchant is a bind parameter.
        table: int(await connection.fetchval(f"SELECT count(*) FROM {table} WHERE merchant_id = $1", merchant_id))
        for table in _LEDGER_TABLES
    }


async def test_a_merchant_sees_only_its_books_and_the_platforms_accounts_only_when_let_in(
    platform: Platform, merchant: Credentials
) -> None:
    mine = await _books(platform, merchant)
    other = await _books(platform, await platform.merchant(name="Merchant B"))
    async with platform.owner.unit_of_work(Tenant(ledger.PLATFORM_MERCHANT_ID, livemode=False), Actor(id="test")) as uow:
        fees = await ledger.create_account(uow, ledger.AccountDraft(currency="USD", type=ledger.AccountType.REVENUE))
    async with platform.owner.transaction() as connection:
        in_full = await _counts(connection, other.merchant_id)
    assert all(in_full.values()), in_full

    tenant = Tenant(mine.merchant_id, livemode=False)
    async with platform.services.database.unit_of_work(tenant, Actor(id="test")) as uow:
        own = await _counts(uow.connection, mine.merchant_id)
        assert own == {
            "ledger_accounts": 3,
            "ledger_balances": 3,
            "ledger_entries": 2,
            "ledger_postings": 4,
            "ledger_open_holds": 1,
        }
        assert await _counts(uow.connection, other.merchant_id) == dict.fromkeys(_LEDGER_TABLES, 0)
        platform_rows = await _counts(uow.connection, ledger.PLATFORM_MERCHANT_ID)
        assert platform_rows == dict.fromkeys(_LEDGER_TABLES, 0)
        assert await uow.connection.fetchval("SELECT count(*) FROM ledger_accounts WHERE id = $1", fees["id"]) == 0

        await uow.connection.execute(_ALLOW_PLATFORM)
        platform_rows = await _counts(uow.connection, ledger.PLATFORM_MERCHANT_ID)
        assert platform_rows["ledger_accounts"] >= 1
        assert platform_rows["ledger_balances"] >= 1
        assert await uow.connection.fetchval("SELECT count(*) FROM ledger_accounts WHERE id = $1", fees["id"]) == 1
        assert await _counts(uow.connection, other.merchant_id) == dict.fromkeys(_LEDGER_TABLES, 0)
    async with platform.services.database.unit_of_work(tenant, Actor(id="test")) as uow:
        # The switch lasts one transaction.
        assert await uow.connection.fetchval("SELECT count(*) FROM ledger_accounts WHERE id = $1", fees["id"]) == 0
        assert (await _counts(uow.connection, mine.merchant_id))["ledger_accounts"] == 3
