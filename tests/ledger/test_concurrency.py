"""The ledger under real concurrency on the real database: many writers at once keep
the books balanced at every moment and never deadlock; a balance limit is never
overdrawn; a reference replayed at once makes one entry; a hold raced by a post and a
void, or an entry by two reversals, is resolved once."""

import asyncio
import functools
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from bastion import bootstrap, ledger
from bastion.kernel.errors import IdempotencyInFlight
from bastion.ledger.entries import retrieve_entry
from bastion.ledger.holds import expire_hold
from bastion.platform.db import Actor, Database, Tenant, UnitOfWork
from bastion.platform.settings import Settings
from tests.support.platform import Credentials, Platform
from tests.support.postgres import TestDatabase

pytestmark = pytest.mark.slow

WORKERS = 16
POOL_SIZE = 24
RUN_TIMEOUT_S = 120.0
ACTOR = Actor(id="test.ledger_concurrency")
_SET_TENANT = "SELECT set_config('bastion.merchant_id', $1, true), set_config('bastion.livemode', 'false', true)"


@pytest.fixture(scope="module")
async def database(settings: Settings, test_database: TestDatabase) -> AsyncIterator[Database]:
    """The app role, with a connection for every worker and then some."""
    built = Database(bootstrap.role_dsn(settings, test_database.owner_url, test_database.roles.app), pool_size=POOL_SIZE)
    yield built
    await built.dispose()


@pytest.fixture(scope="module")
async def worker_database(settings: Settings, test_database: TestDatabase) -> AsyncIterator[Database]:
    """The worker role, as the expiry job runs."""
    built = bootstrap.role_database(settings, test_database.owner_url, test_database.roles.worker)
    yield built
    await built.dispose()


class Run:
    """Outcomes of concurrent tasks: every failure is kept, deadlocks are counted apart."""

    def __init__(self) -> None:
        self.deadlocks = 0
        self.failures: list[str] = []

    async def guard(self, operation: Awaitable[None]) -> None:
        try:
            await operation
        except asyncpg.DeadlockDetectedError:
            self.deadlocks += 1
        except Exception as error:  # noqa: BLE001  (any other failure is reported by the test, with its type)
            self.failures.append(repr(error))

    def check(self) -> None:
        assert self.deadlocks == 0, f"{self.deadlocks} deadlocks"
        assert not self.failures, f"{len(self.failures)} failures, the first: {self.failures[:3]}"


async def _in_uow(database: Database, tenant: Tenant, operation: Callable[[UnitOfWork], Awaitable[Any]]) -> Any:
    async with database.unit_of_work(tenant, ACTOR) as uow:
        return await operation(uow)


async def _account(database: Database, tenant: Tenant, currency: str = "USD", **fields: Any) -> str:
    draft = ledger.AccountDraft(currency=currency, type=fields.pop("type", ledger.AccountType.ASSET), **fields)
    created = await _in_uow(database, tenant, lambda uow: ledger.create_account(uow, draft))
    account_id: str = created["id"]
    return account_id


def _transfer(debit: str, credit: str, amount_minor: int, currency: str = "USD", **fields: Any) -> ledger.EntryDraft:
    return ledger.EntryDraft(
        postings=(
            ledger.PostingDraft(debit, "debit", amount_minor, currency),
            ledger.PostingDraft(credit, "credit", amount_minor, currency),
        ),
        **fields,
    )


async def _balance(database: Database, tenant: Tenant, account_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = await _in_uow(database, tenant, lambda uow: ledger.balance(uow, account_id))
    return shown


# (a) Books balanced at every read, stored balances equal to the journal, no deadlock

ACCOUNTS_PER_CURRENCY = 10
ENTRIES = 1_500
BATCH_SIZE = 3
HOT_STRIPES = 8
READ_PAUSE_S = 0.002

_NET_PER_CURRENCY = """
SELECT currency, sum(debits_posted - credits_posted) AS posted_net, sum(debits_pending - credits_pending) AS pending_net
FROM ledger_balances WHERE merchant_id = $1 GROUP BY currency
"""
# Stored balance rows next to the sums of their postings, per (account, stripe).
_BALANCES_AGAINST_POSTINGS = """
SELECT b.account_id, b.stripe, b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending,
       coalesce(p.debits, 0) AS journal_debits, coalesce(p.credits, 0) AS journal_credits
FROM ledger_balances b
LEFT JOIN (
    SELECT account_id, stripe,
           sum(amount_minor) FILTER (WHERE NOT is_credit) AS debits, sum(amount_minor) FILTER (WHERE is_credit) AS credits
    FROM ledger_postings WHERE merchant_id = $1 AND NOT is_pending GROUP BY account_id, stripe
) p USING (account_id, stripe)
WHERE b.merchant_id = $1
"""


async def test_concurrent_transfers_keep_every_snapshot_balanced(
    platform: Platform, database: Database, merchant: Credentials
) -> None:
    tenant = Tenant(merchant.merchant_id, False)
    currencies = ("USD", "EUR")
    accounts = {
        currency: [
            await _account(database, tenant, currency, type=random.choice(list(ledger.AccountType)))  # noqa: S311  (test data)
            for _ in range(ACCOUNTS_PER_CURRENCY)
        ]
        for currency in currencies
    }
    # The merchant's own fee account, credited by every entry: striped so that writers spread over it.
    hot = {
        currency: await _account(database, tenant, currency, type=ledger.AccountType.REVENUE, stripes=HOT_STRIPES)
        for currency in currencies
    }
    every_account = [account for currency in currencies for account in (*accounts[currency], hot[currency])]

    def draft(rng: random.Random) -> ledger.EntryDraft:
        currency = rng.choice(currencies)
        payer, payee = rng.sample(accounts[currency], 2)
        amount_minor, fee_minor = rng.randint(1, 10_000), rng.randint(1, 100)
        return ledger.EntryDraft(
            postings=(
                ledger.PostingDraft(payer, "debit", amount_minor + fee_minor, currency),
                ledger.PostingDraft(payee, "credit", amount_minor, currency),
                ledger.PostingDraft(hot[currency], "credit", fee_minor, currency),
            )
        )

    run = Run()
    remaining = ENTRIES
    written = 0
    writing = asyncio.Event()
    done = asyncio.Event()

    async def post(drafts: list[ledger.EntryDraft]) -> None:
        nonlocal written
        async with database.unit_of_work(tenant, ACTOR) as uow:
            await ledger.post_entries(uow, drafts, platform=False)
        written += len(drafts)

    async def writer(seed: int) -> None:
        nonlocal remaining
        rng = random.Random(seed)  # noqa: S311  (test data, reproducible per worker)
        while remaining > 0:
            count = min(remaining, BATCH_SIZE if rng.random() < 0.1 else 1)
            remaining -= count
            writing.set()
            await run.guard(post([draft(rng) for _ in range(count)]))

    reads = {"sql": 0, "snapshot": 0, "during_writes": 0}

    async def read_sql() -> None:
        """One statement over every balance row: one snapshot."""
        async with platform.owner.connection() as connection:
            rows = await connection.fetch(_NET_PER_CURRENCY, merchant.merchant_id)
        for row in rows:
            assert (row["posted_net"], row["pending_net"]) == (0, 0), f"unbalanced books in {row['currency']}: {dict(row)}"
        reads["sql"] += 1

    async def read_snapshot() -> None:
        """balance() of every account in one repeatable-read transaction, as the app."""
        net = dict.fromkeys(currencies, 0)
        async with database.connection() as connection, connection.transaction(isolation="repeatable_read", readonly=True):
            await connection.execute(_SET_TENANT, merchant.merchant_id)
            uow = UnitOfWork(connection=connection, tenant=tenant, actor=ACTOR, clock=database.clock)
            for account_id in every_account:
                shown = await ledger.balance(uow, account_id)
                net[shown["currency"]] += shown["debits_posted"] - shown["credits_posted"]
        assert net == dict.fromkeys(currencies, 0), f"unbalanced books in one snapshot: {net}"
        reads["snapshot"] += 1

    async def reader() -> None:
        await writing.wait()
        while not done.is_set():
            await (read_sql() if (reads["sql"] + reads["snapshot"]) % 2 == 0 else read_snapshot())
            if not done.is_set():
                reads["during_writes"] += 1
            await asyncio.sleep(READ_PAUSE_S)

    async def writers() -> None:
        try:
            await asyncio.gather(*(writer(seed) for seed in range(WORKERS)))
        finally:
            done.set()

    started = time.monotonic()
    async with asyncio.timeout(RUN_TIMEOUT_S):
        await asyncio.gather(writers(), reader())
    elapsed_s = time.monotonic() - started
    run.check()
    assert written == ENTRIES
    assert reads["during_writes"] >= 10, f"the reader barely ran while writers wrote: {reads} in {elapsed_s:.1f} s"
    await read_sql()

    async with platform.owner.connection() as connection:
        entries = await connection.fetchval("SELECT count(*) FROM ledger_entries WHERE merchant_id = $1", merchant.merchant_id)
        rows = await connection.fetch(_BALANCES_AGAINST_POSTINGS, merchant.merchant_id)
    assert entries == ENTRIES
    assert len(rows) == 2 * ACCOUNTS_PER_CURRENCY + 2 * HOT_STRIPES
    for row in rows:
        stored = (row["debits_posted"], row["credits_posted"], row["debits_pending"], row["credits_pending"])
        assert stored == (row["journal_debits"], row["journal_credits"], 0, 0), f"balance row off its postings: {dict(row)}"
    for currency in currencies:
        stripes_used = {row["stripe"] for row in rows if row["account_id"] == hot[currency] and row["credits_posted"] > 0}
        assert stripes_used == set(range(HOT_STRIPES)), f"writers of the hot {currency} account used stripes {stripes_used}"


# (b) A balance limit under concurrent debits

FUNDS_MINOR = 200
ATTEMPTS_PER_WORKER = 25


async def test_overdraft_limit_holds_under_concurrent_debits(
    platform: Platform, database: Database, merchant: Credentials
) -> None:
    tenant = Tenant(merchant.merchant_id, False)
    funding = await _account(database, tenant)
    sink = await _account(database, tenant, type=ledger.AccountType.LIABILITY)
    wallet = await _account(database, tenant, type=ledger.AccountType.LIABILITY, debits_must_not_exceed_credits=True)
    await _in_uow(database, tenant, lambda uow: ledger.post_entry(uow, _transfer(funding, wallet, FUNDS_MINOR)))

    run = Run()
    outcomes: Counter[str] = Counter()
    done = asyncio.Event()
    reads = 0

    async def debit_once() -> None:
        await _in_uow(database, tenant, lambda uow: ledger.post_entry(uow, _transfer(wallet, sink, 1)))

    async def hold_then_post() -> None:
        hold = await _in_uow(database, tenant, lambda uow: ledger.post_entry(uow, _transfer(wallet, sink, 1, pending=True)))
        # Once held, the unit is the hold's: posting it cannot fail for want of funds.
        await _in_uow(database, tenant, lambda uow: ledger.post_pending(uow, hold["id"]))

    async def attempt(operation: Callable[[], Awaitable[None]]) -> None:
        try:
            await operation()
        except ledger.LedgerRejected as error:
            outcomes[error.code] += 1
        else:
            outcomes["succeeded"] += 1

    async def worker(index: int) -> None:
        # Half the workers debit at once, half through a hold.
        operation = debit_once if index % 2 == 0 else hold_then_post
        for _ in range(ATTEMPTS_PER_WORKER):
            await run.guard(attempt(operation))

    async def reader() -> None:
        nonlocal reads
        while not done.is_set():
            async with platform.owner.connection() as connection:
                row = await connection.fetchrow(
                    "SELECT debits_posted, credits_posted, debits_pending FROM ledger_balances WHERE account_id = $1", wallet
                )
            assert row["debits_posted"] + row["debits_pending"] <= row["credits_posted"] == FUNDS_MINOR, dict(row)
            shown = await _balance(database, tenant, wallet)
            assert shown["available"] >= 0, shown
            reads += 1
            await asyncio.sleep(READ_PAUSE_S)

    async def workers() -> None:
        try:
            await asyncio.gather(*(worker(index) for index in range(WORKERS)))
        finally:
            done.set()

    async with asyncio.timeout(RUN_TIMEOUT_S):
        await asyncio.gather(workers(), reader())
    run.check()
    attempts = WORKERS * ATTEMPTS_PER_WORKER
    assert outcomes == Counter({"succeeded": FUNDS_MINOR, "exceeds_credits": attempts - FUNDS_MINOR}), outcomes
    assert reads > 0
    shown = await _balance(database, tenant, wallet)
    assert (shown["posted"], shown["pending"], shown["available"]) == (0, 0, 0), shown
    assert (await _balance(database, tenant, sink))["posted"] == FUNDS_MINOR


# (c) One reference replayed at once


REPLAY_ROUNDS = 5


async def _entries_with_reference(platform: Platform, merchant_id: str, reference: str) -> int:
    async with platform.owner.connection() as connection:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE merchant_id = $1 AND reference = $2", merchant_id, reference
        )
    return count


async def test_concurrent_replays_over_http_make_one_entry(platform: Platform, database: Database, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, False)
    cash = await _account(database, tenant)
    wallet = await _account(database, tenant, type=ledger.AccountType.LIABILITY)
    async with platform.client(merchant) as client:
        for round_ in range(REPLAY_ROUNDS):
            reference = f"deposit-{round_}"
            body = {
                "reference": reference,
                "postings": [
                    {"account": cash, "direction": "debit", "amount_minor": 500, "currency": "USD"},
                    {"account": wallet, "direction": "credit", "amount_minor": 500, "currency": "USD"},
                ],
            }
            async with asyncio.timeout(RUN_TIMEOUT_S):
                responses = await asyncio.gather(*(client.post("/v1/ledger/entries", json=body) for _ in range(WORKERS)))
            # The route retries once after a reference_in_flight, and by then the winner has committed.
            assert [response.status_code for response in responses] == [200] * WORKERS, [r.text for r in responses]
            assert len({response.json()["id"] for response in responses}) == 1
            assert await _entries_with_reference(platform, merchant.merchant_id, reference) == 1
    assert (await _balance(database, tenant, wallet))["posted"] == 500 * REPLAY_ROUNDS


async def test_concurrent_replays_through_the_facade_make_one_entry(
    platform: Platform, database: Database, merchant: Credentials
) -> None:
    """Inside a unit of work a lost race is IdempotencyInFlight (reference_in_flight);
    once retried, it answers with the winner's entry."""
    tenant = Tenant(merchant.merchant_id, False)
    cash = await _account(database, tenant)
    wallet = await _account(database, tenant, type=ledger.AccountType.LIABILITY)

    async def post(draft: ledger.EntryDraft) -> dict[str, Any] | IdempotencyInFlight:
        try:
            entry: dict[str, Any] = await _in_uow(database, tenant, lambda uow: ledger.post_entry(uow, draft))
        except IdempotencyInFlight as lost:
            return lost
        return entry

    for round_ in range(REPLAY_ROUNDS):
        draft = _transfer(cash, wallet, 700, reference=f"payout-{round_}")
        async with asyncio.timeout(RUN_TIMEOUT_S):
            outcomes = await asyncio.gather(*(post(draft) for _ in range(WORKERS)))
        lost = [outcome for outcome in outcomes if isinstance(outcome, IdempotencyInFlight)]
        assert {error.code for error in lost} <= {"reference_in_flight"}
        retried = [await post(draft) for _ in lost]
        entries = [outcome for outcome in [*outcomes, *retried] if isinstance(outcome, dict)]
        assert len(entries) == WORKERS
        assert len({entry["id"] for entry in entries}) == 1
        assert await _entries_with_reference(platform, merchant.merchant_id, draft.reference or "") == 1
    assert (await _balance(database, tenant, wallet))["posted"] == 700 * REPLAY_ROUNDS


# (d) One hold, one resolution; one entry, one reversal

HOLDS = 40
HOLD_MINOR = 10
PARTIAL_MINOR = 7
REVERSED_ENTRIES = 20


Outcome = dict[str, Any] | ledger.LedgerRejected


async def _retrieve_entry(uow: UnitOfWork, entry_id: str) -> dict[str, Any]:
    return await retrieve_entry(uow, entry_id)


async def _outcome(operation: Awaitable[dict[str, Any]]) -> Outcome:
    try:
        return await operation
    except ledger.LedgerRejected as error:
        return error


async def test_a_hold_raced_by_post_and_void_is_resolved_once(database: Database, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, False)
    payer = await _account(database, tenant, type=ledger.AccountType.LIABILITY, debits_must_not_exceed_credits=True)
    payee = await _account(database, tenant, type=ledger.AccountType.LIABILITY)
    funding = await _account(database, tenant)
    await _in_uow(database, tenant, lambda uow: ledger.post_entry(uow, _transfer(funding, payer, HOLDS * HOLD_MINOR)))
    holds = []
    for _ in range(HOLDS):
        hold = await _in_uow(
            database, tenant, lambda uow: ledger.post_entry(uow, _transfer(payer, payee, HOLD_MINOR, pending=True))
        )
        holds.append(hold["id"])

    async def race(index: int, hold_id: str) -> tuple[str, Outcome, Outcome]:
        amount_minor = PARTIAL_MINOR if index % 2 else None
        post = _in_uow(database, tenant, lambda uow: ledger.post_pending(uow, hold_id, amount_minor))
        void = _in_uow(database, tenant, lambda uow: ledger.void_pending(uow, hold_id))
        posted, voided = await asyncio.gather(_outcome(post), _outcome(void))
        return hold_id, posted, voided

    async with asyncio.timeout(RUN_TIMEOUT_S):
        results = await asyncio.gather(*(race(index, hold_id) for index, hold_id in enumerate(holds)))
    posted_minor = 0
    for index, (hold_id, posted, voided) in enumerate(results):
        if isinstance(posted, dict):
            assert isinstance(voided, ledger.LedgerRejected), f"{hold_id} was both posted and voided"
            assert voided.code == "hold_already_posted", voided
            posted_minor += PARTIAL_MINOR if index % 2 else HOLD_MINOR
        else:
            assert isinstance(voided, dict), f"{hold_id}: neither post ({posted.code}) nor void ({voided}) won"
            assert posted.code == "hold_already_voided", posted
        shown = await _in_uow(database, tenant, functools.partial(_retrieve_entry, entry_id=hold_id))
        assert shown["status"] == ("posted" if isinstance(posted, dict) else "voided")
    assert posted_minor > 0, "every race went to the void: the post never ran first"
    payer_balance = await _balance(database, tenant, payer)
    assert (payer_balance["posted"], payer_balance["pending"]) == (HOLDS * HOLD_MINOR - posted_minor, 0), payer_balance
    assert (await _balance(database, tenant, payee))["posted"] == posted_minor


async def test_an_entry_raced_by_two_reversals_is_reversed_once(database: Database, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, False)
    cash = await _account(database, tenant)
    wallet = await _account(database, tenant, type=ledger.AccountType.LIABILITY)
    entries = []
    for _ in range(REVERSED_ENTRIES):
        entry = await _in_uow(database, tenant, lambda uow: ledger.post_entry(uow, _transfer(cash, wallet, 100)))
        entries.append(entry["id"])

    async def race(entry_id: str) -> list[Outcome]:
        return list(
            await asyncio.gather(
                *(_outcome(_in_uow(database, tenant, lambda uow: ledger.reverse_entry(uow, entry_id))) for _ in range(2))
            )
        )

    async with asyncio.timeout(RUN_TIMEOUT_S):
        results = await asyncio.gather(*(race(entry_id) for entry_id in entries))
    for outcomes in results:
        assert sum(isinstance(outcome, dict) for outcome in outcomes) == 1, outcomes
        assert [o.code for o in outcomes if isinstance(o, ledger.LedgerRejected)] == ["entry_already_reversed"]
    assert (await _balance(database, tenant, wallet))["posted"] == 0


EXPIRING_HOLDS = 20
HOLD_TIMEOUT_S = 1
EXPIRY_WAIT_S = 1.2
STAGGER_S = 0.02


async def test_due_holds_raced_by_the_job_and_by_hand_expire_once(
    platform: Platform, database: Database, worker_database: Database, merchant: Credentials
) -> None:
    """Two runs of the expiry job (as the worker role) and an expire_hold per hold, all
    at once, with a post and a void thrown in: each hold expires exactly once."""
    tenant = Tenant(merchant.merchant_id, False)
    payer = await _account(database, tenant, type=ledger.AccountType.LIABILITY, debits_must_not_exceed_credits=True)
    payee = await _account(database, tenant, type=ledger.AccountType.LIABILITY)
    funding = await _account(database, tenant)
    await _in_uow(database, tenant, lambda uow: ledger.post_entry(uow, _transfer(funding, payer, EXPIRING_HOLDS)))
    holds = []
    for _ in range(EXPIRING_HOLDS):
        hold = await _in_uow(
            database,
            tenant,
            lambda uow: ledger.post_entry(uow, _transfer(payer, payee, 1, pending=True, timeout_s=HOLD_TIMEOUT_S)),
        )
        holds.append(hold["id"])
    await worker_database.ping()  # the job's pool open before the race, not during it
    await asyncio.sleep(EXPIRY_WAIT_S)

    async def by_hand(index: int, hold_id: str) -> list[Outcome]:
        # The job takes the holds oldest first, the hand newest first: they meet in the middle.
        await asyncio.sleep((EXPIRING_HOLDS - 1 - index) * STAGGER_S)
        return list(
            await asyncio.gather(
                _outcome(_in_uow(database, tenant, lambda uow: expire_hold(uow, hold_id))),
                _outcome(_in_uow(database, tenant, lambda uow: ledger.post_pending(uow, hold_id))),
                _outcome(_in_uow(database, tenant, lambda uow: ledger.void_pending(uow, hold_id))),
            )
        )

    async def by_job() -> list[int]:
        return list(await asyncio.gather(*(ledger.expire_due_holds(worker_database) for _ in range(2))))

    async with asyncio.timeout(RUN_TIMEOUT_S):
        job = asyncio.create_task(by_job())
        by_hand_results = await asyncio.gather(*(by_hand(index, hold_id) for index, hold_id in enumerate(holds)))
        job_runs = await job
    expired_by_hand = 0
    for hold_id, (expired, posted, voided) in zip(holds, by_hand_results, strict=True):
        for refused in (posted, voided):
            assert isinstance(refused, ledger.LedgerRejected), f"{hold_id} was resolved after its expiry"
            assert refused.code in ("hold_expired", "hold_already_expired"), refused
        if isinstance(expired, dict):
            expired_by_hand += 1
        else:
            assert expired.code == "hold_already_expired", expired
        shown = await _in_uow(database, tenant, functools.partial(_retrieve_entry, entry_id=hold_id))
        assert shown["status"] == "expired"
        assert shown["resolved_by"] is not None
    # The job may also have expired other tests' holds; ours it expired at least once each, or by hand.
    assert sum(job_runs) + expired_by_hand >= EXPIRING_HOLDS
    async with platform.owner.connection() as connection:
        expiries = await connection.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE merchant_id = $1 AND kind = 'expire_pending'", merchant.merchant_id
        )
    assert expiries == EXPIRING_HOLDS
    shown = await _balance(database, tenant, payer)
    assert (shown["posted"], shown["pending"], shown["available"]) == (EXPIRING_HOLDS, 0, EXPIRING_HOLDS), shown
