"""Benchmark: create customers over HTTP, against pgbench -N on the same database.

A fixed count of `POST /v1/customers`, each with its own Idempotency-Key, from a number
of concurrent keep-alive clients to a real `bastion api` process; then `pgbench -N` on
the same database as the physical anchor. Every response must be a 200 and the
database must hold exactly the customers sent, or the run fails instead of reporting.

    python bench/api.py [--count 5000] [--clients 16] [--database-url URL]

Writes bench/results/api.json and rewrites its own section of docs/benchmarks.md.
"""

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import orjson
import psutil  # type: ignore[import-untyped]  # no stubs in the locked dependencies
import uvloop

from bastion import bootstrap
from bastion.kernel.ids import new_id
from bastion.merchants import create_api_key, create_merchant
from bastion.platform.crypto import KeyedHasher, LocalKeyring
from bastion.platform.db import Actor, Tenant, plain_dsn
from bastion.platform.embedded_pg import EmbeddedPostgres

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the scratch-database helpers live with the tests
from tests.support.postgres import TestDatabase, free_port, migrated_database, server_url, stop_process

REPO = Path(__file__).resolve().parents[1]
DOC_PATH = REPO / "docs" / "benchmarks.md"
DOC_HEADER = (
    "# Benchmarks\n\n"
    "Speed is measured in `bench/`, never asserted in tests. Each benchmark runs its peers in the same run "
    "(pgbench on the same database is the anchor for anything that commits), writes `bench/results/<name>.json` "
    "and rewrites only its own section below, between its `<!-- bench:<name>:start/end -->` markers.\n"
)

COUNT_DEFAULT = 5_000
COUNT_MAX = 200_000
CLIENTS_DEFAULT = 16
CLIENTS_MAX = 256
WARMUP_COUNT = 200
WARMUP_TIME_LIMIT_S = 60.0
TIME_LIMIT_S = 120.0
REQUEST_TIMEOUT_S = 10.0
API_START_TIMEOUT_S = 30.0
RSS_SAMPLE_INTERVAL_S = 0.2
PGBENCH_SCALE = 1
PGBENCH_DURATION_S = 20
PGBENCH_TIMEOUT_S = 180
ERROR_SAMPLES_MAX = 5
# Set far above any rate this machine reaches: the benchmark measures work, not the limiter.
RATE_LIMIT_UNTHROTTLED = "1000000"

TARGET_RATIO_MIN = 0.5
TARGET_P99_MS_MAX = 50.0
TARGET_RSS_MB_MAX = 250.0

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]+)", re.IGNORECASE)
_PGBENCH_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)


class BenchFailed(Exception):
    """The run cannot produce a trustworthy number."""


@dataclass(frozen=True)
class ApiKey:
    merchant_id: str
    secret: str


@dataclass
class Phase:
    """One load phase: which requests to send, and what came back."""

    first_index: int
    count: int
    deadline: float
    next_index: int = 0
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def take(self) -> int | None:
        """The next request index, or None when the count is reached or the time is up."""
        if self.next_index >= self.count or time.monotonic() > self.deadline:
            return None
        self.next_index += 1
        return self.first_index + self.next_index - 1

    def fail(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < ERROR_SAMPLES_MAX:
            self.error_samples.append(message)


async def fetch_value(url: str, query: str, *args: object) -> Any:
    connection = await asyncpg.connect(plain_dsn(url))
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


async def prepare(database: TestDatabase) -> ApiKey:
    """A merchant and an all-scopes test key, made with the real services."""
    hasher = KeyedHasher(LocalKeyring.open(database.data_dir, create=False).secret(bootstrap.API_KEY_HASH_PURPOSE))
    owner = bootstrap.owner_database(database.owner_url)
    merchant_id = new_id("mer")
    tenant = Tenant(merchant_id=merchant_id, livemode=False)
    actor = Actor(id="bench")
    try:
        async with owner.unit_of_work(tenant, actor) as uow:
            await create_merchant(uow, "Benchmark merchant")
        async with owner.unit_of_work(tenant, actor) as uow:
            issued = await create_api_key(uow, hasher, None)
    finally:
        await owner.dispose()
    return ApiKey(merchant_id=merchant_id, secret=issued.secret)


def log_tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-3000:]


@contextmanager
def api_process(database: TestDatabase, log: IO[bytes], workers: int) -> Iterator[tuple[int, psutil.Process]]:
    """A real `bastion api` on 127.0.0.1, ready (its /readyz reached the database)."""
    port = free_port()
    env = {
        **os.environ,
        "BASTION_DATABASE_URL": database.owner_url,
        "BASTION_DATA_DIR": str(database.data_dir),
        "BASTION_DB_ROLE_PREFIX": database.role_prefix,
        "BASTION_RATE_LIMIT_PER_S": RATE_LIMIT_UNTHROTTLED,
        "BASTION_RATE_LIMIT_BURST": RATE_LIMIT_UNTHROTTLED,
        # The access log is info-level: measure the API, not the terminal.
        "BASTION_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bastion", "api", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + API_START_TIMEOUT_S
        while not _ready(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchFailed(f"bastion api did not become ready:\n{log_tail(log)}")
            time.sleep(0.1)
        yield port, psutil.Process(process.pid)
    finally:
        stop_process(process)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


class HttpConnection:
    """One keep-alive HTTP/1.1 connection. Much cheaper per request than a full client,
    which matters when the load generator shares the machine's cores with the API; our
    own server always answers with Content-Length, and anything else is an error."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> "HttpConnection":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        length = _CONTENT_LENGTH.search(head)
        if not head.startswith(b"HTTP/1.1 ") or length is None:
            raise BenchFailed(f"unexpected response head: {head[:200]!r}")
        return int(head[9:12]), await self._reader.readexactly(int(length.group(1)))

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


def customer_request(port: int, secret: str, idempotency_key: str, body: bytes, media_type: str = "application/json") -> bytes:
    """The raw bytes of a `POST /v1/customers` with `body`."""
    head = (
        "POST /v1/customers HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {secret}\r\n"
        f"Idempotency-Key: {idempotency_key}\r\n"
        f"Content-Type: {media_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def create_customer_request(port: int, secret: str, run_id: str, index: int) -> bytes:
    body = orjson.dumps({"email": f"customer{index}@example.com", "name": f"Customer {index}", "metadata": {"bench": run_id}})
    return customer_request(port, secret, f"bench-{run_id}-{index}", body)


async def timed_request(connection: HttpConnection, raw: bytes, index: int, phase: Phase) -> tuple[int, bytes] | None:
    """One request, its latency recorded; None (the phase failed) when the connection
    is in an unknown state and its client must stop."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            status, body = await connection.request(raw)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, BenchFailed) as error:
        phase.fail(f"request {index}: {type(error).__name__}: {error}")
        return None
    phase.latencies_s.append(time.perf_counter() - started)
    return status, body


# The raw request of index `index`: a customer to create, each with its own Idempotency-Key.
CustomerRequest = Callable[[int, str, str, int], bytes]


async def client(port: int, key: ApiKey, run_id: str, phase: Phase, request: CustomerRequest = create_customer_request) -> None:
    connection = await HttpConnection.open(port)
    try:
        while (index := phase.take()) is not None:
            answer = await timed_request(connection, request(port, key.secret, run_id, index), index, phase)
            if answer is None:
                return
            status, body = answer
            if status != 200 or orjson.loads(body).get("object") != "customer":
                phase.fail(f"request {index}: HTTP {status}: {body[:300]!r}")
    finally:
        await connection.close()


async def run_phase(port: int, key: ApiKey, run_id: str, clients: int, phase: Phase) -> None:
    started = time.perf_counter()
    await asyncio.gather(*(client(port, key, run_id, phase) for _ in range(clients)))
    phase.wall_s = time.perf_counter() - started


def api_tree(process: psutil.Process) -> list[psutil.Process]:
    """The API process and its workers (with --workers > 1, uvicorn supervises child processes)."""
    return [process, *process.children(recursive=True)]


def peak_rss(processes: list[psutil.Process]) -> int:
    """The largest resident set among the API processes: the target is per process."""
    sizes = [0]
    for process in processes:
        try:
            sizes.append(process.memory_info().rss)
        except psutil.NoSuchProcess:
            continue
    return max(sizes)


async def sample_rss(process: psutil.Process, peak_bytes: list[int]) -> None:
    """Record the peak resident set size of any API process until cancelled."""
    while True:
        peak_bytes[0] = max(peak_bytes[0], peak_rss(api_tree(process)))
        await asyncio.sleep(RSS_SAMPLE_INTERVAL_S)


def cpu_s(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def postgres_processes() -> list[psutil.Process]:
    # Every PostgreSQL process on the machine: ours do the work, an idle other server adds ~nothing.
    return [process for process in psutil.process_iter(["name"]) if process.info["name"] == "postgres"]


@dataclass(frozen=True)
class Load:
    warmup: Phase
    measured: Phase
    peak_rss_bytes: int
    api_cpu_s: float
    db_cpu_s: float


async def load(port: int, process: psutil.Process, key: ApiKey, clients: int, count: int) -> Load:
    """Warm-up (not counted), then the measured phase, with the CPU time the API process and
    PostgreSQL spent on the measured phase and the API's peak RSS."""
    run_id = secrets.token_hex(4)
    peak_bytes = [0]
    sampler = asyncio.create_task(sample_rss(process, peak_bytes))
    try:
        warmup = Phase(first_index=0, count=WARMUP_COUNT, deadline=time.monotonic() + WARMUP_TIME_LIMIT_S)
        await run_phase(port, key, run_id, clients, warmup)
        databases = postgres_processes()
        apis = api_tree(process)
        api_before, db_before = cpu_s(apis), cpu_s(databases)
        measured = Phase(first_index=WARMUP_COUNT, count=count, deadline=time.monotonic() + TIME_LIMIT_S)
        await run_phase(port, key, run_id, clients, measured)
        api_cpu, db_cpu = cpu_s(apis) - api_before, cpu_s(databases) - db_before
    finally:
        sampler.cancel()
    peak_bytes[0] = max(peak_bytes[0], peak_rss(api_tree(process)))
    return Load(warmup, measured, peak_bytes[0], api_cpu, db_cpu)


def percentile_ms(latencies_s: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the value below which `fraction` of the samples lie."""
    ordered = sorted(latencies_s)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1] * 1000


def pgbench_binary(bin_dir: Path | None) -> Path:
    """The bundled pgbench: it speaks to any server by URL, so it is the anchor even for external ones."""
    if bin_dir is None:
        with tempfile.TemporaryDirectory(prefix="bastion-bench-bin-") as scratch:
            bin_dir = EmbeddedPostgres(Path(scratch)).bin_dir
    bundled = bin_dir / "pgbench"
    if bundled.exists():
        return bundled
    found = shutil.which("pgbench")
    if found is None:
        raise BenchFailed("pgbench not found: neither bundled with pgserver nor on PATH")
    return Path(found)


def pgbench_command(pgbench: Path, url: str) -> Callable[..., str]:
    """pgbench with the given arguments on `url`'s database: its output, or BenchFailed."""
    libpq_url = plain_dsn(url)

    def run(*args: str) -> str:
        result = subprocess.run(
            [str(pgbench), *args, libpq_url], capture_output=True, text=True, timeout=PGBENCH_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            raise BenchFailed(f"pgbench {' '.join(args)} failed: {result.stderr.strip()[-2000:]}")
        return result.stdout

    return run


def pgbench_version(pgbench: Path) -> str:
    return subprocess.run([str(pgbench), "--version"], capture_output=True, text=True, check=True).stdout.strip()


def run_pgbench(pgbench: Path, url: str, clients: int) -> tuple[float, str]:
    """`pgbench -N` on the benchmark's database: its own pgbench_* tables, dropped after."""
    run = pgbench_command(pgbench, url)
    version = pgbench_version(pgbench)
    run("-i", "-q", "-s", str(PGBENCH_SCALE))
    try:
        threads = min(clients, os.cpu_count() or 1)
        output = run("-N", "-c", str(clients), "-j", str(threads), "-T", str(PGBENCH_DURATION_S))
    finally:
        run("-i", "-I", "d")  # initialize step "d": drop the pgbench tables
    tps = _PGBENCH_TPS.search(output)
    if tps is None:
        raise BenchFailed(f"no tps in pgbench output:\n{output}")
    return float(tps.group(1)), version


def machine(owner_url: str, pgbench_version: str) -> dict[str, Any]:
    cpu_model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": asyncio.run(fetch_value(owner_url, "SHOW server_version")),
        "pgbench": pgbench_version,
    }


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def metric_table(rows: list[tuple[str, str, str, str]]) -> str:
    """A benchmark's results as a Markdown table: metric, value, target, met or MISSED."""
    lines = ["| metric | value | target | |", "|---|---|---|---|"]
    lines.extend(f"| {name} | {value} | {target} | {status} |" for name, value, target, status in rows)
    return "\n".join(lines)


def table(results: dict[str, Any]) -> str:
    rows = [
        ("customers/s", f"{results['customers_per_s']:.0f}", "", ""),
        ("p50 latency", f"{results['p50_ms']:.1f} ms", "", ""),
        (
            "p99 latency",
            f"{results['p99_ms']:.1f} ms",
            f"< {TARGET_P99_MS_MAX:.0f} ms",
            verdict(results["p99_ms"] < TARGET_P99_MS_MAX),
        ),
        ("pgbench -N tps, same database", f"{results['pgbench_n_tps']:.0f}", "", ""),
        (
            "ratio to pgbench -N",
            f"{results['ratio_to_pgbench']:.2f}",
            f">= {TARGET_RATIO_MIN}",
            verdict(results["ratio_to_pgbench"] >= TARGET_RATIO_MIN),
        ),
        (
            "API peak RSS",
            f"{results['api_rss_mb']:.0f} MB",
            f"< {TARGET_RSS_MB_MAX:.0f} MB",
            verdict(results["api_rss_mb"] < TARGET_RSS_MB_MAX),
        ),
        ("API process CPU per request", f"{results['api_cpu_ms_per_request']:.2f} ms", "", ""),
        ("PostgreSQL CPU per request", f"{results['db_cpu_ms_per_request']:.2f} ms", "", ""),
        ("requests (clients)", f"{results['count']} ({results['clients']})", "", ""),
        ("errors", str(results["errors"]), "0", verdict(results["errors"] == 0)),
    ]
    return metric_table(rows)


def doc_section(results: dict[str, Any]) -> str:
    box = results["machine"]
    start, end = doc_markers("api")
    return f"""{start}
## API: create customer

Latest run: {results["timestamp"]}

{table(results)}

Machine: {box["nproc"]} cores ({box["cpu_model"]}), {box["memory_gb"]} GB, {box["os"]}, Python {box["python"]},
PostgreSQL {box["postgres"]}.

Method (`bench/api.py`): a fresh database (embedded PostgreSQL by default) is migrated and given a merchant
and a test key; a real `bastion api` process (uvicorn, log level warning, rate limit out of the way) serves
`POST /v1/customers` with a unique `Idempotency-Key` per request to {results["clients"]} concurrent keep-alive
HTTP/1.1 clients: {WARMUP_COUNT} warm-up requests not counted, then {results["count"]} measured (capped at
{TIME_LIMIT_S:.0f} s). Latency is per request at the client, p50/p99 by nearest rank; throughput is requests
over wall time. Every response must be a 200 customer and the database must then hold exactly the customers
sent, or the run fails. Peak RSS of the API process is sampled every {RSS_SAMPLE_INTERVAL_S} s. The anchor is
`pgbench -N -c {results["clients"]} -T {PGBENCH_DURATION_S}` (scale {PGBENCH_SCALE}) on the same database
right after. The load generator, the API and PostgreSQL share the same cores, so absolute numbers are lower
than on separate machines; the ratio to pgbench is the number to compare across machines.

Reproduce: `make bench`, or `.venv/bin/python bench/api.py --count {COUNT_DEFAULT} --clients {CLIENTS_DEFAULT}`;
add `--database-url postgresql://user:pass@host/postgres` (or set `BASTION_BENCH_DATABASE_URL`) to run against
an existing server, where a private database and roles are created and dropped.
{end}"""


def section_head(title: str, results: dict[str, Any], rendered_table: str) -> str:
    """The start of a benchmark's section of docs/benchmarks.md: its title, when and at which
    revision it ran, its table and the machine."""
    return (
        f"## {title}\n\nLatest run: {results['timestamp']} ({results['revision']})\n\n{rendered_table}\n\n"
        f"{machine_line(results['machine'])}"
    )


def machine_line(box: dict[str, Any]) -> str:
    """The machine a run measured, as each benchmark's section of docs/benchmarks.md says it."""
    return (
        f"Machine: {box['nproc']} cores ({box['cpu_model']}), {box['memory_gb']} GB, {box['os']}, Python {box['python']},\n"
        f"PostgreSQL {box['postgres']}."
    )


def doc_markers(name: str) -> tuple[str, str]:
    """The comments around benchmark `name`'s own section of docs/benchmarks.md."""
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def run_and_report(
    name: str,
    run: Callable[[], dict[str, Any]],
    table: Callable[[dict[str, Any]], str],
    section: Callable[[dict[str, Any]], str],
    *,
    quick: bool = False,
) -> None:
    """Run benchmark `name`: a failure is one line and exit status 1; results are printed as
    `table` and written (see `write_results`)."""
    try:
        results = run()
    except BenchFailed as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(table(results))
    write_results(name, results, section(results), quick=quick)


def write_results(name: str, results: dict[str, Any], section: str, *, quick: bool = False) -> None:
    """A full run goes to bench/results/<name>.json and, as `section`, between its markers in
    docs/benchmarks.md (appended when they are missing). A quick run is a smoke test: its
    JSON goes to a temporary file and the repository is left alone."""
    text = json.dumps(results, indent=2) + "\n"
    if quick:
        with tempfile.NamedTemporaryFile("w", prefix=f"bastion-bench-{name}-", suffix=".json", delete=False) as scratch:
            scratch.write(text)
        print(f"quick run: results in {scratch.name}, nothing written to the repository")
        return
    results_path = REPO / "bench" / "results" / f"{name}.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(text)
    start_marker, end_marker = doc_markers(name)
    current = DOC_PATH.read_text() if DOC_PATH.exists() else DOC_HEADER
    start, end = current.find(start_marker), current.find(end_marker)
    if start != -1 and end > start:
        updated = current[:start] + section + current[end + len(end_marker) :]
    else:
        updated = current.rstrip("\n") + "\n\n" + section + "\n"
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(updated)
    print(f"wrote {results_path.relative_to(REPO)} and {DOC_PATH.relative_to(REPO)}")


def bounded_int(low: int, high: int) -> Any:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark with an API process and a database takes."""
    parser.add_argument("--api-workers", type=bounded_int(1, 8), default=1, help="API processes (bastion api --workers)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BASTION_BENCH_DATABASE_URL"),
        help="an admin URL of an existing server (default: a fresh embedded PostgreSQL)",
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Create customers over HTTP against pgbench -N on the same database.")
    parser.add_argument("--count", type=bounded_int(1, COUNT_MAX), default=COUNT_DEFAULT, help="measured requests")
    parser.add_argument("--clients", type=bounded_int(1, CLIENTS_MAX), default=CLIENTS_DEFAULT, help="concurrent clients")
    add_server_arguments(parser)
    return parser.parse_args()


def bench(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any]
    with ExitStack() as stack:
        admin_url, bin_dir = stack.enter_context(server_url(args.database_url))
        database = stack.enter_context(migrated_database(admin_url, bin_dir, name_prefix="bastion_bench"))
        key = asyncio.run(prepare(database))
        log = stack.enter_context(tempfile.TemporaryFile())
        with api_process(database, log, args.api_workers) as (port, process):
            print(f"load: {WARMUP_COUNT} warm-up + {args.count} requests, {args.clients} clients ...", flush=True)
            measured_load = uvloop.run(load(port, process, key, args.clients, args.count))
        warmup, measured = measured_load.warmup, measured_load.measured
        errors = warmup.errors + measured.errors
        if errors:
            samples = "\n  ".join(warmup.error_samples + measured.error_samples)
            raise BenchFailed(f"{errors} failed requests, e.g.:\n  {samples}\nAPI log tail:\n{log_tail(log)}")
        sent = len(warmup.latencies_s) + len(measured.latencies_s)
        stored = asyncio.run(
            fetch_value(database.owner_url, "SELECT count(*) FROM customers WHERE merchant_id = $1", key.merchant_id)
        )
        if stored != sent:
            raise BenchFailed(f"{sent} customers created over HTTP but {stored} in the database")
        if measured.next_index < args.count:
            print(f"time limit of {TIME_LIMIT_S:.0f} s reached: reporting {measured.next_index} of {args.count} requests")
        print(f"pgbench -N: {args.clients} clients for {PGBENCH_DURATION_S} s ...", flush=True)
        pgbench_tps, pgbench_version = run_pgbench(pgbench_binary(bin_dir), database.owner_url, args.clients)
        customers_per_s = len(measured.latencies_s) / measured.wall_s
        results = {
            "customers_per_s": round(customers_per_s, 1),
            "p50_ms": round(percentile_ms(measured.latencies_s, 0.50), 2),
            "p99_ms": round(percentile_ms(measured.latencies_s, 0.99), 2),
            "pgbench_n_tps": round(pgbench_tps, 1),
            "ratio_to_pgbench": round(customers_per_s / pgbench_tps, 3),
            "api_rss_mb": round(measured_load.peak_rss_bytes / 2**20, 1),
            "api_cpu_ms_per_request": round(measured_load.api_cpu_s * 1000 / len(measured.latencies_s), 2),
            "db_cpu_ms_per_request": round(measured_load.db_cpu_s * 1000 / len(measured.latencies_s), 2),
            "count": len(measured.latencies_s),
            "clients": args.clients,
            "api_workers": args.api_workers,
            "errors": errors,
            "machine": machine(database.owner_url, pgbench_version),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    return results


def main() -> None:
    args = parse_args()
    run_and_report("api", lambda: bench(args), table, doc_section)


if __name__ == "__main__":
    main()
