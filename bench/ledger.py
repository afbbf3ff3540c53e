"""Benchmark: posting ledger entries, against pgbench TPC-B and django-hordak on the same database.

One run, one scratch database (migrated like the tests'), six rates:

- single: two-posting transfers between accounts drawn at random, one entry per transaction,
  from concurrent clients through the facade (`bastion.ledger.post_entry` in a unit of work);
- hot: the same, each entry also crediting one shared, striped platform fee account;
- batch: `bastion.ledger.post_entries` with full batches, one transaction each;
- api: `POST /v1/ledger/entries` from keep-alive clients to a real `bastion api` process;
- pgbench TPC-B (the built-in script) on the same database, the physical anchor;
- django-hordak's `Account.transfer_to` (a Python double-entry peer on Django's ORM), if installed.

Every load loop is bounded in count and time. Afterwards the books must balance per
currency, every account must hold exactly what was posted to it and the journal must
count exactly the entries posted (the same for hordak), or the run fails.

    python bench/ledger.py [--quick] [--count 20000] [--clients 16] [--database-url URL]

Writes bench/results/ledger.json and rewrites its own section of docs/benchmarks.md
(`--quick` is a smoke run in seconds that writes only a temporary JSON).
"""

import argparse
import asyncio
import importlib
import importlib.metadata
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import psutil  # type: ignore[import-untyped]  # no stubs in the locked dependencies
import uvloop
from sqlalchemy.engine import make_url

from bastion.ledger import (
    PLATFORM_MERCHANT_ID,
    AccountDraft,
    AccountType,
    EntryDraft,
    PostingDraft,
    create_account,
    post_entries,
    post_entry,
)
from bastion.platform.db import Actor, Database, RolePasswords, Tenant, plain_dsn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.api and the scratch-database helpers
from bench.api import (
    ApiKey,
    BenchFailed,
    HttpConnection,
    Phase,
    add_server_arguments,
    api_process,
    bounded_int,
    cpu_s,
    doc_markers,
    log_tail,
    machine,
    percentile_ms,
    pgbench_binary,
    pgbench_command,
    pgbench_version,
    postgres_processes,
    prepare,
    run_and_report,
    timed_request,
    verdict,
)
from tests.support.postgres import TestDatabase, migrated_database, server_url

REPO = Path(__file__).resolve().parents[1]
DOC_START, DOC_END = doc_markers("ledger")

CURRENCY = "USD"
ACTOR = Actor(id="bench")
AMOUNT_MINOR_MIN = 100
AMOUNT_MINOR_MAX = 100_000
FEE_BASIS_POINTS = 290
FEE_ACCOUNT_STRIPES = 16
ACCOUNTS_PER_TRANSACTION = 1_000
ACCOUNT_CREATORS = 8
CLIENTS_DEFAULT = 16
CLIENTS_MAX = 64
COUNT_MAX = 500_000
ACCOUNTS_MAX = 100_000
BATCH_SIZE = 8_000  # bastion.ledger's limit per batch
PHASE_TIME_LIMIT_S = 60.0
REQUEST_TIMEOUT_S = 10.0
PGBENCH_TIMEOUT_S = 300
ROUND_TRIP_PROBE_ENTRIES = 200
HISTORY_ENTRIES = 8_000
HORDAK_SAMPLE_SIZE = 500
HORDAK_ACCOUNTS_MAX = 2_000
COUNT_DEFAULT = 12_000

TARGET_SINGLE_TO_PGBENCH_MIN = 1.0
TARGET_HOT_TO_SINGLE_MIN = 0.7
TARGET_BATCH_TPS_MIN = 50_000.0
TARGET_SINGLE_TO_HORDAK_MIN = 30.0

_PGBENCH_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)
_PGBENCH_PROCESSED = re.compile(r"^number of transactions actually processed: ([0-9]+)", re.MULTILINE)


@dataclass(frozen=True)
class Sizes:
    """How much each phase does: the full run, or a smoke run in seconds."""

    accounts: int
    count: int
    warmup: int
    history: int
    batches: int
    batch_size: int
    api_count: int
    hordak_accounts: int
    hordak_count: int
    pgbench_scale: int
    pgbench_duration_s: int

    @classmethod
    def full(cls, count: int, accounts: int) -> "Sizes":
        # pgbench at scale 16: as many branch rows as clients, so that TPC-B's one-row-per-branch
        # update does not cap the anchor below what the machine can do. Fewer hordak accounts: each
        # costs ~5 ms through MPTT, and hordak locks no account row, so their number does not
        # change what a transfer costs.
        hordak_accounts = min(accounts, HORDAK_ACCOUNTS_MAX)
        return cls(accounts, count, 200, HISTORY_ENTRIES, 3, BATCH_SIZE, count // 4, hordak_accounts, count // 4, 16, 20)

    @classmethod
    def quick(cls) -> "Sizes":
        return cls(500, 300, 30, 1_000, 1, 1_000, 200, 200, 200, 1, 3)


class Books:
    """What the run posted, per account (debits less credits, minor units): the journal
    and the balances must agree with it at the end. Thread-safe for the hordak phase."""

    def __init__(self) -> None:
        self.net: dict[str, int] = {}
        self.entries = 0
        self.postings = 0
        self._lock = threading.Lock()

    def record(self, postings: Sequence[tuple[str, int]]) -> None:
        """One entry: (account, signed amount) per posting, debits positive."""
        with self._lock:
            for account, signed in postings:
                self.net[account] = self.net.get(account, 0) + signed
            self.entries += 1
            self.postings += len(postings)

    def record_drafts(self, postings: Sequence[PostingDraft]) -> None:
        self.record([(p.account_id, p.amount_minor if p.direction == "debit" else -p.amount_minor) for p in postings])


@dataclass
class ThreadPhase(Phase):
    """A Phase shared by threads (the hordak clients) instead of tasks."""

    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> int | None:
        with self.lock:
            return super().take()

    def fail(self, message: str) -> None:
        with self.lock:
            super().fail(message)


@dataclass(frozen=True)
class Cpu:
    """CPU seconds: of the process(es) doing Bastion's (or hordak's) work, of the PostgreSQL
    server, and of everything else on the machine (other sessions; the load generator when it
    is not the process doing the work)."""

    python_s: float
    db_s: float
    other_s: float

    def __sub__(self, before: "Cpu") -> "Cpu":
        return Cpu(self.python_s - before.python_s, self.db_s - before.db_s, self.other_s - before.other_s)

    def __add__(self, other: "Cpu") -> "Cpu":
        return Cpu(self.python_s + other.python_s, self.db_s + other.db_s, self.other_s + other.other_s)


@dataclass(frozen=True)
class Meter:
    python: Callable[[], list[psutil.Process]]
    server: Callable[[], float]

    def read(self) -> Cpu:
        python, server = cpu_s(self.python()), self.server()
        return Cpu(python, server, machine_busy_s() - python - server)


@dataclass(frozen=True)
class Rate:
    """A measured phase: entries per second and where the CPU went."""

    count: int
    wall_s: float
    cpu: Cpu
    latencies_s: list[float] = field(default_factory=list, repr=False)

    @property
    def tps(self) -> float:
        return self.count / self.wall_s

    def summary(self, clients: int) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "tps": round(self.tps, 1),
            "count": self.count,
            "clients": clients,
            "wall_s": round(self.wall_s, 2),
            "python_cpu_ms_per_entry": round(self.cpu.python_s * 1000 / self.count, 3),
            "db_cpu_ms_per_entry": round(self.cpu.db_s * 1000 / self.count, 3),
            "other_cpu_ms_per_entry": round(self.cpu.other_s * 1000 / self.count, 3),
        }
        if self.latencies_s:
            summary["p50_ms"] = round(percentile_ms(self.latencies_s, 0.50), 2)
            summary["p99_ms"] = round(percentile_ms(self.latencies_s, 0.99), 2)
        return summary


@dataclass
class Ledger:
    """The facade phases' world: the app-role pool, the merchant's accounts and the fee account."""

    app: Database
    tenant: Tenant
    accounts: list[str]
    fee_account: str
    books: Books

    def draw(self, *, hot: bool) -> tuple[PostingDraft, ...]:
        """A transfer between two accounts at random; hot: a fee of it to the platform account."""
        debit, credit = random.sample(self.accounts, 2)
        amount = random.randint(AMOUNT_MINOR_MIN, AMOUNT_MINOR_MAX)
        if not hot:
            return (PostingDraft(debit, "debit", amount, CURRENCY), PostingDraft(credit, "credit", amount, CURRENCY))
        fee = max(1, amount * FEE_BASIS_POINTS // 10_000)
        return (
            PostingDraft(debit, "debit", amount, CURRENCY),
            PostingDraft(credit, "credit", amount - fee, CURRENCY),
            PostingDraft(self.fee_account, "credit", fee, CURRENCY),
        )

    async def post(self, *, hot: bool) -> None:
        postings = self.draw(hot=hot)
        async with self.app.unit_of_work(self.tenant, ACTOR) as uow:
            await post_entry(uow, EntryDraft(postings=postings), platform=hot)
        self.books.record_drafts(postings)


# Measuring


def this_process() -> list[psutil.Process]:
    return [psutil.Process()]


def machine_busy_s() -> float:
    """Every core's non-idle time so far, whoever spent it."""
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.irq + times.softirq + times.steal)


async def server_cpu(owner_url: str) -> tuple[Callable[[], float], str]:
    """CPU seconds of the server's postmaster and all its processes, exited backends included
    (the postmaster reaps them), when the server runs on this machine; else of every process
    named postgres. With the scope measured, for the record."""
    connection = await asyncpg.connect(plain_dsn(owner_url))
    try:
        # Looked up while the backend lives: its parent is the postmaster.
        postmaster = psutil.Process(await connection.fetchval("SELECT pg_backend_pid()")).parent()
    except psutil.Error:
        postmaster = None
    finally:
        await connection.close()
    if postmaster is None or postmaster.name() not in {"postgres", "postmaster"}:
        return (lambda: cpu_s(postgres_processes())), "every process named postgres on this machine"

    def total() -> float:
        times = postmaster.cpu_times()
        return float(times.user + times.system + times.children_user + times.children_system) + cpu_s(postmaster.children())

    return total, "the benchmark's PostgreSQL server (postmaster and children)"


def fail_on_errors(*phases: Phase, context: str = "") -> None:
    errors = sum(phase.errors for phase in phases)
    if errors:
        samples = "\n  ".join(sample for phase in phases for sample in phase.error_samples)
        raise BenchFailed(f"{errors} failed entries, e.g.:\n  {samples}{context}")


async def run_tasks(clients: int, phase: Phase, client: Callable[[Phase], Awaitable[None]]) -> None:
    started = time.perf_counter()
    await asyncio.gather(*(client(phase) for _ in range(clients)))
    phase.wall_s = time.perf_counter() - started


async def measure(
    clients: int,
    count: int,
    warmup: int,
    client: Callable[[Phase], Awaitable[None]],
    meter: Meter,
) -> Rate:
    """A warm-up that is not counted (pools fill, statements get prepared), then `count` entries."""
    warm = Phase(first_index=0, count=warmup, deadline=time.monotonic() + PHASE_TIME_LIMIT_S)
    await run_tasks(clients, warm, client)
    fail_on_errors(warm)
    before = meter.read()
    measured = Phase(first_index=warmup, count=count, deadline=time.monotonic() + PHASE_TIME_LIMIT_S)
    await run_tasks(clients, measured, client)
    used = meter.read() - before
    fail_on_errors(measured)
    if measured.next_index < count:
        print(f"  time limit of {PHASE_TIME_LIMIT_S:.0f} s reached: {measured.next_index} of {count} entries")
    return Rate(len(measured.latencies_s), measured.wall_s, used, measured.latencies_s)


# The facade phases


def app_dsn(database: TestDatabase) -> str:
    """The API's role (row-level security applies), as bootstrap connects it."""
    role = database.roles.app
    return plain_dsn(database.owner_url, role=role, password=RolePasswords(database.data_dir).load()[role])


async def create_accounts(app: Database, tenant: Tenant, count: int) -> list[str]:
    """`count` USD asset accounts without limits, through the facade, in a few big transactions."""
    chunks = [min(ACCOUNTS_PER_TRANSACTION, count - start) for start in range(0, count, ACCOUNTS_PER_TRANSACTION)]
    semaphore = asyncio.Semaphore(ACCOUNT_CREATORS)

    async def chunk(size: int) -> list[str]:
        async with semaphore, app.unit_of_work(tenant, ACTOR) as uow:
            return [(await create_account(uow, AccountDraft(CURRENCY, AccountType.ASSET)))["id"] for _ in range(size)]

    created = await asyncio.gather(*(chunk(size) for size in chunks))
    return [account for ids in created for account in ids]


async def create_fee_account(app: Database) -> str:
    """The platform's striped revenue account that hot entries credit."""
    platform = Tenant(merchant_id=PLATFORM_MERCHANT_ID, livemode=False)
    draft = AccountDraft(CURRENCY, AccountType.REVENUE, code=f"bench_fees_{os.getpid()}", stripes=FEE_ACCOUNT_STRIPES)
    async with app.unit_of_work(platform, ACTOR) as uow:
        account: str = (await create_account(uow, draft))["id"]
    return account


def facade_client(ledger: Ledger, *, hot: bool) -> Callable[[Phase], Awaitable[None]]:
    async def client(phase: Phase) -> None:
        while phase.take() is not None:
            started = time.perf_counter()
            try:
                await ledger.post(hot=hot)
            except Exception as error:  # noqa: BLE001  (any failure is counted and fails the run)
                phase.fail(f"{type(error).__name__}: {error}")
                return
            phase.latencies_s.append(time.perf_counter() - started)

    return client


async def batch_rate(ledger: Ledger, sizes: Sizes, meter: Meter) -> Rate:
    """Full batches through `post_entries`, one transaction each, one after the other."""
    await post_batch(ledger, [EntryDraft(postings=ledger.draw(hot=False)) for _ in range(sizes.warmup)])
    wall_s, cpu, posted = 0.0, Cpu(0.0, 0.0, 0.0), 0
    deadline = time.monotonic() + PHASE_TIME_LIMIT_S
    for _ in range(sizes.batches):
        if time.monotonic() > deadline:
            print(f"  time limit of {PHASE_TIME_LIMIT_S:.0f} s reached after {posted} entries")
            break
        drafts = [EntryDraft(postings=ledger.draw(hot=False)) for _ in range(sizes.batch_size)]
        before, started = meter.read(), time.perf_counter()
        await post_batch(ledger, drafts)
        wall_s += time.perf_counter() - started
        cpu += meter.read() - before
        posted += len(drafts)
    return Rate(posted, wall_s, cpu)


async def post_batch(ledger: Ledger, drafts: list[EntryDraft]) -> None:
    async with ledger.app.unit_of_work(ledger.tenant, ACTOR) as uow:
        results = await post_entries(uow, drafts)
    if len(results) != len(drafts) or any(result.result != "created" for result in results):
        raise BenchFailed(f"a batch of {len(drafts)} entries did not create them all")
    for draft in drafts:
        ledger.books.record_drafts(draft.postings)


async def statement_profile(
    dsn: str,
    ledger: Ledger,
    post: Callable[[Ledger, int], Awaitable[None]],
    *,
    entries: int,
    runs: int,
    warmup: int,
) -> dict[str, Any]:
    """The statements `post` sends per entry, and their mean time, on one otherwise idle
    connection, from asyncpg's query log (BEGIN, COMMIT and the pool's reset included)."""
    probe = Database(dsn, pool_size=1)
    logged: list[tuple[str, float]] = []
    try:
        async with probe.connection() as connection:
            connection.add_query_logger(lambda query: logged.append((" ".join(query.query.split()), query.elapsed)))
        single = Ledger(probe, ledger.tenant, ledger.accounts, ledger.fee_account, ledger.books)
        for _ in range(warmup):
            await post(single, 1)
        logged.clear()
        started = time.perf_counter()
        for _ in range(runs):
            await post(single, entries)
        wall_s = time.perf_counter() - started
    finally:
        await probe.dispose()
    kinds: Counter[str] = Counter()
    times: dict[str, float] = {}
    for query, elapsed in logged:
        kind = statement_kind(query)
        kinds[kind] += 1
        times[kind] = times.get(kind, 0.0) + elapsed
    posted = entries * runs
    return {
        "entries": posted,
        "statements_per_entry": round(len(logged) / posted, 3),
        "wall_ms_per_entry": round(wall_s * 1000 / posted, 3),
        "statement_ms_per_entry": round(sum(times.values()) * 1000 / posted, 3),
        "statements": {
            kind: {"per_run": round(n / runs, 2), "mean_ms": round(times[kind] * 1000 / n, 3)} for kind, n in kinds.most_common()
        },
    }


async def statement_profiles(dsn: str, ledger: Ledger, sizes: Sizes) -> dict[str, Any]:
    """Where a facade call's time goes, with no other load: single, hot and one batch."""

    async def single(probe: Ledger, _: int) -> None:
        await probe.post(hot=False)

    async def hot(probe: Ledger, _: int) -> None:
        await probe.post(hot=True)

    async def batch(probe: Ledger, entries: int) -> None:
        await post_batch(probe, [EntryDraft(postings=probe.draw(hot=False)) for _ in range(entries)])

    runs = ROUND_TRIP_PROBE_ENTRIES
    return {
        "single": await statement_profile(dsn, ledger, single, entries=1, runs=runs, warmup=runs // 10),
        "hot": await statement_profile(dsn, ledger, hot, entries=1, runs=runs, warmup=runs // 10),
        "batch": await statement_profile(dsn, ledger, batch, entries=sizes.batch_size, runs=1, warmup=1),
    }


async def analyze(owner_url: str) -> None:
    """Fresh planner statistics for the whole database, as `pgbench -i` leaves its tables."""
    connection = await asyncpg.connect(plain_dsn(owner_url))
    try:
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def history(ledger: Ledger, entries: int) -> None:
    """A journal that is not empty: entries posted before the measured phases, in full batches."""
    for start in range(0, entries, BATCH_SIZE):
        await post_batch(ledger, [EntryDraft(postings=ledger.draw(hot=False)) for _ in range(min(BATCH_SIZE, entries - start))])


def statement_kind(query: str) -> str:
    """A short name for a logged statement."""
    names = {
        "set_config('bastion.merchant_id'": "set tenant",
        "set_config('bastion.ledger_platform'": "allow platform accounts",
        "FROM ledger_balances b JOIN unnest": "lock balances",
        "INSERT INTO ledger_entries": "write journal",
        "pg_advisory_unlock_all": "pool reset on release",
    }
    for needle, name in names.items():
        if needle in query:
            return name
    return query.split(";", maxsplit=1)[0][:40]


async def facade_phases(
    database: TestDatabase, key: ApiKey, sizes: Sizes, server: Callable[[], float], *, clients: int, fresh: bool
) -> dict[str, Any]:
    """Accounts and some history, then single, hot and batch rates through the facade, and
    the statement profiles. `fresh`: no ANALYZE after the setup (the planner's view of a new database)."""
    app = Database(app_dsn(database), pool_size=clients)
    tenant = Tenant(merchant_id=key.merchant_id, livemode=False)
    try:
        started = time.perf_counter()
        accounts = await create_accounts(app, tenant, sizes.accounts)
        accounts_s = time.perf_counter() - started
        ledger = Ledger(app, tenant, accounts, await create_fee_account(app), Books())
        print(f"{len(accounts)} accounts in {accounts_s:.1f} s; {sizes.history} entries of history ...", flush=True)
        await history(ledger, sizes.history)
        if not fresh:
            await analyze(database.owner_url)
        meter = Meter(this_process, server)
        print(f"single: {sizes.warmup} warm-up + {sizes.count} entries, {clients} clients ...", flush=True)
        single = await measure(clients, sizes.count, sizes.warmup, facade_client(ledger, hot=False), meter)
        print(f"hot: {sizes.warmup} warm-up + {sizes.count} entries, {clients} clients ...", flush=True)
        hot = await measure(clients, sizes.count, sizes.warmup, facade_client(ledger, hot=True), meter)
        print(f"batch: {sizes.batches} x {sizes.batch_size} entries ...", flush=True)
        batch = await batch_rate(ledger, sizes, meter)
        print("statement profiles: single, hot and one batch on one idle connection ...", flush=True)
        profiles = await statement_profiles(app_dsn(database), ledger, sizes)
    finally:
        await app.dispose()
    return {
        "ledger": ledger,
        "accounts_per_s": round(len(accounts) / accounts_s, 1),
        "single": single,
        "hot": hot,
        "batch": batch,
        "statement_profiles": profiles,
    }


# The API phase


def entry_request(port: int, secret: str, key: str, *, debit: str, credit: str, amount: int) -> bytes:
    postings = [
        {"account": debit, "direction": "debit", "amount_minor": amount, "currency": CURRENCY},
        {"account": credit, "direction": "credit", "amount_minor": amount, "currency": CURRENCY},
    ]
    body = orjson.dumps({"postings": postings})
    head = (
        "POST /v1/ledger/entries HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {secret}\r\n"
        f"Idempotency-Key: {key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def api_client(port: int, key: ApiKey, ledger: Ledger, run_id: str) -> Callable[[Phase], Awaitable[None]]:
    async def client(phase: Phase) -> None:
        connection = await HttpConnection.open(port)
        try:
            while (index := phase.take()) is not None:
                debit, credit = random.sample(ledger.accounts, 2)
                amount = random.randint(AMOUNT_MINOR_MIN, AMOUNT_MINOR_MAX)
                raw = entry_request(port, key.secret, f"bench-{run_id}-{index}", debit=debit, credit=credit, amount=amount)
                answer = await timed_request(connection, raw, index, phase)
                if answer is None:
                    return
                status, body = answer
                if status != 200 or orjson.loads(body).get("status") != "posted":
                    phase.fail(f"request {index}: HTTP {status}: {body[:300]!r}")
                    continue
                ledger.books.record([(debit, amount), (credit, -amount)])
        finally:
            await connection.close()

    return client


def api_rate(
    database: TestDatabase, key: ApiKey, ledger: Ledger, sizes: Sizes, server: Callable[[], float], *, clients: int, workers: int
) -> Rate:
    with tempfile.TemporaryFile() as log, api_process(database, log, workers) as (port, process):
        print(f"api: {sizes.warmup} warm-up + {sizes.api_count} requests, {clients} clients ...", flush=True)
        client = api_client(port, key, ledger, os.urandom(4).hex())
        meter = Meter(lambda: [process, *process.children(recursive=True)], server)
        try:
            return uvloop.run(measure(clients, sizes.api_count, sizes.warmup, client, meter))
        except BenchFailed as error:
            raise BenchFailed(f"{error}\nAPI log tail:\n{log_tail(log)}") from None


# Correctness


async def verify_books(owner_url: str, merchant_id: str, books: Books) -> dict[str, Any]:
    """The balances sum to zero per currency, every account holds what was posted to it,
    and the journal holds exactly the entries and postings posted."""
    connection = await asyncpg.connect(plain_dsn(owner_url))
    try:
        sums = await connection.fetch(
            "SELECT currency, sum(debits_posted - credits_posted) AS posted, sum(debits_pending - credits_pending) AS pending "
            "FROM ledger_balances GROUP BY currency"
        )
        journal = await connection.fetch(
            "SELECT currency, sum(CASE WHEN is_credit THEN -amount_minor ELSE amount_minor END) AS net "
            "FROM ledger_postings GROUP BY currency"
        )
        entries = await connection.fetchval("SELECT count(*) FROM ledger_entries WHERE merchant_id = $1", merchant_id)
        postings = await connection.fetchval("SELECT count(*) FROM ledger_postings WHERE merchant_id = $1", merchant_id)
        balances = await connection.fetch(
            "SELECT account_id, sum(debits_posted) - sum(credits_posted) AS net FROM ledger_balances "
            "WHERE account_id = ANY($1::text[]) GROUP BY account_id",
            list(books.net),
        )
    finally:
        await connection.close()
    problems = [
        f"balances in {row['currency']} sum to {row['posted']} posted and {row['pending']} pending"
        for row in sums
        if row["posted"] or row["pending"]
    ]
    problems += [f"journal postings in {row['currency']} sum to {row['net']}" for row in journal if row["net"]]
    if entries != books.entries or postings != books.postings:
        problems.append(f"posted {books.entries} entries / {books.postings} postings, journal has {entries} / {postings}")
    stored = {row["account_id"]: int(row["net"]) for row in balances}
    wrong = [account for account, net in books.net.items() if stored.get(account, 0) != net]
    if wrong:
        problems.append(f"{len(wrong)} accounts differ from what was posted, e.g. {wrong[0]}")
    if problems:
        raise BenchFailed("the ledger's books are wrong after the run: " + "; ".join(problems))
    return {"entries": entries, "postings": postings, "accounts_checked": len(books.net), "currencies": len(sums)}


# pgbench TPC-B


def pgbench_tpcb(pgbench: Path, url: str, sizes: Sizes, server: Callable[[], float], *, clients: int) -> tuple[Rate, str]:
    """The built-in TPC-B script on the benchmark's database: its own pgbench_* tables, dropped
    after. The rate is pgbench's own tps; the CPU is the server's (pgbench itself counts as other)."""
    run = pgbench_command(pgbench, url)
    version = pgbench_version(pgbench)
    print(f"pgbench: init scale {sizes.pgbench_scale}, TPC-B {clients} clients for {sizes.pgbench_duration_s} s ...", flush=True)
    run("-i", "-q", "-s", str(sizes.pgbench_scale))
    try:
        threads = min(clients, os.cpu_count() or 1)
        meter = Meter(list, server)  # no Python here: only the server is measured
        before = meter.read()
        output = run("-c", str(clients), "-j", str(threads), "-T", str(sizes.pgbench_duration_s))
        cpu = meter.read() - before
    finally:
        run("-i", "-I", "d")  # initialize step "d": drop the pgbench tables
    tps, processed = _PGBENCH_TPS.search(output), _PGBENCH_PROCESSED.search(output)
    if tps is None or processed is None:
        raise BenchFailed(f"no tps in pgbench output:\n{output}")
    count = int(processed.group(1))
    return Rate(count, count / float(tps.group(1)), cpu), version


# django-hordak


def hordak_unavailable() -> str | None:
    """Why hordak cannot run here, or None."""
    try:
        for module in ("django", "hordak", "psycopg", "moneyed"):
            importlib.import_module(module)
    except ImportError as error:
        return f"{error.name or error} is not installed here: `make bench` installs requirements/bench.txt"
    return None


def configure_django(owner_url: str) -> None:
    """Django in-process on the benchmark's database; hordak's tables and triggers beside Bastion's."""
    django = importlib.import_module("django")
    settings = importlib.import_module("django.conf").settings
    url = make_url(plain_dsn(owner_url))
    query = {name: value for name, value in url.query.items() if isinstance(value, str)}
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": url.database,
                "USER": url.username or "",
                "PASSWORD": url.password or "",
                "HOST": query.get("host", url.host or ""),
                "PORT": str(url.port or query.get("port", "")),
            }
        },
        INSTALLED_APPS=["django.contrib.contenttypes", "mptt", "hordak"],
        USE_TZ=True,
        DEFAULT_CURRENCY=CURRENCY,
        HORDAK_INTERNAL_CURRENCY=CURRENCY,
        CURRENCIES=[CURRENCY],
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    importlib.import_module("django.core.management").call_command("migrate", verbosity=0)


def hordak_accounts(count: int) -> list[Any]:
    """`count` root asset accounts in USD, through the ORM, sequentially (MPTT numbers trees
    as it inserts), a thousand per transaction."""
    transaction = importlib.import_module("django.db").transaction
    models = importlib.import_module("hordak.models")
    accounts: list[Any] = []
    for start in range(0, count, ACCOUNTS_PER_TRANSACTION):
        with transaction.atomic():
            accounts.extend(
                models.Account.objects.create(
                    name=f"Bench {index}", code=f"{index:06d}", type=models.AccountType.asset, currencies=[CURRENCY]
                )
                for index in range(start, min(count, start + ACCOUNTS_PER_TRANSACTION))
            )
    return accounts


def hordak_client(accounts: list[Any], books: Books) -> Callable[[ThreadPhase], None]:
    """`credit.transfer_to(debit, amount)`: hordak credits the source and debits the
    destination; between asset accounts the source goes down and the destination up, as
    a Bastion entry that debits one and credits the other."""
    connection = importlib.import_module("django.db").connection
    money = importlib.import_module("moneyed").Money

    def client(phase: ThreadPhase) -> None:
        try:
            while phase.take() is not None:
                debit, credit = random.sample(accounts, 2)
                amount = random.randint(AMOUNT_MINOR_MIN, AMOUNT_MINOR_MAX)
                started = time.perf_counter()
                try:
                    credit.transfer_to(debit, money(Decimal(amount).scaleb(-2), CURRENCY))
                except Exception as error:  # noqa: BLE001  (any failure is counted and fails the run)
                    phase.fail(f"{type(error).__name__}: {error}")
                    return
                phase.latencies_s.append(time.perf_counter() - started)
                books.record([(str(debit.pk), amount), (str(credit.pk), -amount)])
        finally:
            connection.close()  # this thread's own connection

    return client


def run_threads(clients: int, phase: ThreadPhase, client: Callable[[ThreadPhase], None]) -> None:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="hordak") as pool:
        for future in [pool.submit(client, phase) for _ in range(clients)]:
            future.result()
    phase.wall_s = time.perf_counter() - started


def verify_hordak(books: Books) -> dict[str, Any]:
    """Transactions and legs as posted, debits equal credits, and a sample of balances as posted
    (hordak's balance of an asset account is debits less credits, like Bastion's)."""
    models = importlib.import_module("hordak.models")
    aggregates = importlib.import_module("django.db.models")
    transactions = models.Transaction.objects.count()
    legs = models.Leg.objects.count()
    totals = models.Leg.objects.aggregate(debits=aggregates.Sum("debit"), credits=aggregates.Sum("credit"))
    sample = random.sample(sorted(books.net), min(HORDAK_SAMPLE_SIZE, len(books.net)))
    balances = {str(account.pk): account.balance for account in models.Account.objects.with_balances().filter(pk__in=sample)}
    problems = []
    if transactions != books.entries or legs != books.postings:
        problems.append(f"posted {books.entries} transfers / {books.postings} legs, hordak has {transactions} / {legs}")
    if totals["debits"] != totals["credits"]:
        problems.append(f"legs debit {totals['debits']} but credit {totals['credits']}")
    wrong = [account for account in sample if balances[account][CURRENCY].amount != Decimal(books.net[account]).scaleb(-2)]
    if wrong:
        problems.append(f"{len(wrong)} of {len(sample)} sampled balances differ from what was posted, e.g. account {wrong[0]}")
    if problems:
        raise BenchFailed("django-hordak's books are wrong after the run: " + "; ".join(problems))
    return {"transactions": transactions, "legs": legs, "balances_sampled": len(sample)}


def hordak_phase(
    database: TestDatabase, sizes: Sizes, server: Callable[[], float], *, clients: int, fresh: bool
) -> dict[str, Any]:
    """django-hordak on the same database: migrations, accounts, then concurrent transfers, one
    thread and one connection per client (the ORM is synchronous), in this one process."""
    reason = hordak_unavailable()
    if reason is not None:
        print(f"hordak: skipped, {reason}", flush=True)
        return {"available": False, "reason": reason}
    configure_django(database.owner_url)
    versions = {name: importlib.import_module(name).__version__ for name in ("django", "psycopg")}
    versions["django-hordak"] = importlib.metadata.version("django-hordak")
    started = time.perf_counter()
    accounts = hordak_accounts(sizes.hordak_accounts)
    accounts_s = time.perf_counter() - started
    print(f"hordak: {len(accounts)} accounts in {accounts_s:.1f} s", flush=True)
    books = Books()
    client = hordak_client(accounts, books)
    warm = ThreadPhase(first_index=0, count=sizes.warmup, deadline=time.monotonic() + PHASE_TIME_LIMIT_S)
    run_threads(clients, warm, client)
    if not fresh:
        with importlib.import_module("django.db").connection.cursor() as cursor:
            cursor.execute("ANALYZE hordak_account, hordak_transaction, hordak_leg")
    print(f"hordak: {sizes.warmup} warm-up + {sizes.hordak_count} transfers, {clients} threads ...", flush=True)
    meter = Meter(this_process, server)
    before = meter.read()
    measured = ThreadPhase(first_index=0, count=sizes.hordak_count, deadline=time.monotonic() + PHASE_TIME_LIMIT_S)
    run_threads(clients, measured, client)
    rate = Rate(len(measured.latencies_s), measured.wall_s, meter.read() - before, measured.latencies_s)
    fail_on_errors(warm, measured)
    return {
        "available": True,
        "versions": versions,
        "accounts": len(accounts),
        "accounts_per_s": round(len(accounts) / accounts_s, 1),
        "rate": rate,
        "verification": verify_hordak(books),
    }


# The run


def revision() -> str:
    """The commit measured, marked dirty when the work tree differs from it."""
    described = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    return described.stdout.strip() or "unknown"


def ratio(numerator: float, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


def targets(single: float, hot: float, batch: float, pgbench: float, hordak: float | None) -> dict[str, dict[str, Any]]:
    checks = {
        "single_to_pgbench_tpcb": (ratio(single, pgbench), TARGET_SINGLE_TO_PGBENCH_MIN),
        "hot_to_single": (ratio(hot, single), TARGET_HOT_TO_SINGLE_MIN),
        "batch_tps": (round(batch, 1), TARGET_BATCH_TPS_MIN),
        "single_to_hordak": (ratio(single, hordak), TARGET_SINGLE_TO_HORDAK_MIN),
    }
    return {
        name: {"value": value, "min": minimum, "met": value is not None and value >= minimum}
        for name, (value, minimum) in checks.items()
    }


def bench(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    clients = args.clients
    load_before = os.getloadavg()
    with ExitStack() as stack:
        admin_url, bin_dir = stack.enter_context(server_url(args.database_url))
        database = stack.enter_context(migrated_database(admin_url, bin_dir, name_prefix="bastion_bench"))
        key = asyncio.run(prepare(database))
        server, server_scope = asyncio.run(server_cpu(database.owner_url))
        facade = uvloop.run(facade_phases(database, key, sizes, server, clients=clients, fresh=args.fresh))
        ledger: Ledger = facade["ledger"]
        api = api_rate(database, key, ledger, sizes, server, clients=clients, workers=args.api_workers)
        checked = asyncio.run(verify_books(database.owner_url, key.merchant_id, ledger.books))
        print(f"books balance: {checked['entries']} entries, {checked['accounts_checked']} accounts checked", flush=True)
        pgbench, pgbench_version = pgbench_tpcb(pgbench_binary(bin_dir), database.owner_url, sizes, server, clients=clients)
        hordak = hordak_phase(database, sizes, server, clients=clients, fresh=args.fresh)
        box = machine(database.owner_url, pgbench_version)
    single, hot, batch = facade["single"], facade["hot"], facade["batch"]
    hordak_rate: Rate | None = hordak.pop("rate", None)
    if hordak_rate is not None:
        hordak["phase"] = hordak_rate.summary(clients)
    return {
        "single_tps": round(single.tps, 1),
        "hot_tps": round(hot.tps, 1),
        "batch_tps": round(batch.tps, 1),
        "api_tps": round(api.tps, 1),
        "pgbench_tpcb_tps": round(pgbench.tps, 1),
        "hordak_tps": round(hordak_rate.tps, 1) if hordak_rate is not None else None,
        "targets": targets(single.tps, hot.tps, batch.tps, pgbench.tps, hordak_rate.tps if hordak_rate else None),
        "phases": {
            "single": single.summary(clients),
            "hot": hot.summary(clients),
            "batch": {**batch.summary(1), "batch_size": sizes.batch_size},
            "api": {**api.summary(clients), "api_workers": args.api_workers},
            "pgbench_tpcb": pgbench.summary(clients),
        },
        "statement_profiles": facade["statement_profiles"],
        "setup": {
            "accounts": sizes.accounts,
            "accounts_per_s": facade["accounts_per_s"],
            "fee_account_stripes": FEE_ACCOUNT_STRIPES,
            "history": sizes.history,
            "pgbench_scale": sizes.pgbench_scale,
            "pgbench_duration_s": sizes.pgbench_duration_s,
        },
        "verification": checked,
        "hordak": hordak,
        "db_cpu_scope": server_scope,
        "machine": {**box, "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "quick": args.quick,
        "fresh": args.fresh,
        "revision": revision(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# Report


def fmt_ratio(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "n/a"


def cpu_cell(phase: dict[str, Any] | None, *, python: bool = True) -> str:
    """CPU ms per entry: Python / PostgreSQL / anything else."""
    if phase is None:
        return ""
    parts = [f"{phase[f'{part}_cpu_ms_per_entry']:.2f}" for part in ("python", "db", "other")]
    return " / ".join(parts if python else ["-", *parts[1:]])


def table(results: dict[str, Any]) -> str:
    phases, checks, profiles = results["phases"], results["targets"], results["statement_profiles"]
    single, hordak = phases["single"], results["hordak"].get("phase")

    def target(name: str, shown: str) -> tuple[str, str]:
        check = checks[name]
        return shown, verdict(check["met"]) if check["value"] is not None else "not measured"

    def rate(name: str, phase: dict[str, Any] | None, *, python: bool = True) -> tuple[str, str, str, str, str]:
        return name, f"{phase['tps']:,.0f}" if phase else "not measured", cpu_cell(phase, python=python), "", ""

    rows = [
        rate("single: entries/s, one per transaction", single),
        rate("hot: entries/s, each also crediting one striped fee account", phases["hot"]),
        (*rate("batch: entries/s, batches of 8,000", phases["batch"])[:3], *target("batch_tps", ">= 50,000")),
        rate("api: entries/s over HTTP (Python: the API process; other: the load generator too)", phases["api"]),
        rate("pgbench TPC-B: transactions/s (other: pgbench itself)", phases["pgbench_tpcb"], python=False),
        rate("django-hordak: transfers/s", hordak),
        ("single: p50 / p99 latency", f"{single['p50_ms']:.1f} / {single['p99_ms']:.1f} ms", "", "", ""),
        (
            "statements per entry: single / hot",
            f"{profiles['single']['statements_per_entry']:.0f} / {profiles['hot']['statements_per_entry']:.0f}",
            "",
            "",
            "",
        ),
        (
            "single / pgbench TPC-B",
            fmt_ratio(checks["single_to_pgbench_tpcb"]["value"]),
            "",
            *target("single_to_pgbench_tpcb", f">= {TARGET_SINGLE_TO_PGBENCH_MIN}"),
        ),
        (
            "hot / single",
            fmt_ratio(checks["hot_to_single"]["value"]),
            "",
            *target("hot_to_single", f">= {TARGET_HOT_TO_SINGLE_MIN}"),
        ),
        (
            "single / django-hordak",
            fmt_ratio(checks["single_to_hordak"]["value"]),
            "",
            *target("single_to_hordak", f">= {TARGET_SINGLE_TO_HORDAK_MIN:.0f}"),
        ),
    ]
    lines = ["| metric | value | CPU ms per entry: Python / PostgreSQL / other | target | |", "|---|---|---|---|---|"]
    lines.extend(f"| {' | '.join(row)} |" for row in rows)
    return "\n".join(lines)


def hordak_note(results: dict[str, Any]) -> str:
    hordak = results["hordak"]
    if not hordak["available"]:
        return f"- *django-hordak* was not measured: {hordak['reason']}."
    versions = hordak["versions"]
    return f"""- *django-hordak* {versions["django-hordak"]} (Django {versions["django"]}, psycopg {versions["psycopg"]}),
  configured in-process on the same database with its own migrated tables: {hordak["accounts"]:,} root asset accounts in USD
  through the ORM ({hordak["accounts_per_s"]:.0f}/s: fewer than Bastion's, since hordak locks no account row and
  their number does not change what a transfer costs), then `credit.transfer_to(debit, Money(...))`, which credits
  the source and debits the destination (two legs, one transaction; between asset accounts the source goes down
  and the destination up, as a Bastion entry debiting one and crediting the other), from
  {hordak["phase"]["clients"]} threads with a connection each, in one process like the facade phases. Hordak keeps
  no balance rows (a balance is a sum over legs when read), so a transfer is three inserts and no row lock: less
  database work per entry than Bastion, which locks and rewrites both balances. Afterwards hordak must hold
  exactly the transfers and legs posted, with debits equal to credits, and
  {hordak["verification"]["balances_sampled"]} sampled balances must be what was posted."""


def doc_section(results: dict[str, Any]) -> str:
    box, phases, setup = results["machine"], results["phases"], results["setup"]
    clients = phases["single"]["clients"]
    statistics = (
        "not refreshed (`--fresh`: the planner's view of a new database)"
        if results["fresh"]
        else "refreshed with `ANALYZE`, as `pgbench -i` does for its tables"
    )
    return f"""{DOC_START}
## Ledger: posting entries

Latest run: {results["timestamp"]} (revision {results["revision"]})

{table(results)}

Machine: {box["nproc"]} cores ({box["cpu_model"]}), {box["memory_gb"]} GB, {box["os"]}, Python {box["python"]},
PostgreSQL {box["postgres"]}; load average {box["load_average_before"][0]:.2f} before the run.

Method (`bench/ledger.py`), all on one fresh migrated database (embedded PostgreSQL by default):

- Setup: {setup["accounts"]:,} USD asset accounts of one merchant, without limit flags, made through the facade
  ({setup["accounts_per_s"]:.0f}/s); one platform revenue account with {setup["fee_account_stripes"]} balance
  stripes; {setup["history"]:,} entries of history in full batches; planner statistics then {statistics}.
- *single*: {phases["single"]["count"]:,} two-posting transfers between accounts drawn uniformly at random, each
  `bastion.ledger.post_entry` in its own `unit_of_work` on the app role's pool (row-level security on) of
  {clients} connections, from {clients} concurrent clients in this one process.
- *hot*: the same, but each entry also credits the platform fee account (`platform=True`): debit A the amount,
  credit B the amount less the fee, credit the fee account the fee.
- *batch*: `post_entries` with {phases["batch"]["batch_size"]:,}-entry batches, one transaction each, one after
  the other.
- *api*: `POST /v1/ledger/entries` with a unique `Idempotency-Key` per request from {phases["api"]["clients"]}
  keep-alive HTTP/1.1 clients to a real `bastion api` process ({phases["api"]["api_workers"]} worker, rate limit
  out of the way).
- The anchor: pgbench's built-in TPC-B script, `-c {clients} -j 2 -T {setup["pgbench_duration_s"]}`, initialized
  at scale {setup["pgbench_scale"]} so that TPC-B's one update per branch row does not serialize {clients}
  clients on too few rows.
{hordak_note(results)}

Each phase has an uncounted warm-up and is capped at {PHASE_TIME_LIMIT_S:.0f} s. CPU per entry is measured over
the measured part only: the process doing Bastion's work (this one; the API process for *api*), the PostgreSQL
server's processes, and everything else on the machine (other sessions; the load generator for *api*). Statements
per entry come from asyncpg's query log on one idle connection (`statement_profiles` in the JSON, with the mean
time of each). After the Bastion phases the balances must sum to zero per currency, every account must hold
exactly what was posted to it and the journal must hold exactly the entries and postings posted
({results["verification"]["entries"]:,} entries), or the run fails. The load generator, Bastion and PostgreSQL
share the same cores.

Reproduce: `make bench`, or `.venv/bin/python bench/ledger.py` (`--quick`: a smoke run that writes only a
temporary JSON); add `--database-url postgresql://user:pass@host/postgres` (or set `BASTION_BENCH_DATABASE_URL`)
to run against an existing server, where a private database and roles are created and dropped.
{DOC_END}"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Post ledger entries against pgbench TPC-B and django-hordak.")
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds; writes only a temporary JSON")
    parser.add_argument("--count", type=bounded_int(4, COUNT_MAX), default=COUNT_DEFAULT, help="entries per facade phase")
    parser.add_argument("--accounts", type=bounded_int(2, ACCOUNTS_MAX), default=10_000, help="accounts to spread over")
    parser.add_argument("--clients", type=bounded_int(1, CLIENTS_MAX), default=CLIENTS_DEFAULT, help="concurrent clients")
    parser.add_argument(
        "--fresh", action="store_true", help="skip the ANALYZE after the setup: plans as on a new database (see the doc)"
    )
    add_server_arguments(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    sizes = Sizes.quick() if args.quick else Sizes.full(args.count, args.accounts)
    run_and_report("ledger", lambda: bench(args, sizes), table, doc_section, quick=args.quick)


if __name__ == "__main__":
    main()
