"""Benchmark: the card vault. Tokenize over HTTP against pgbench on the same database, the
cost of forwarding through the vault, and sealing and opening cards with each keyring.

One run, one scratch database (migrated like the tests', which makes the certificates and
the first vault key), one real `bastion vault` process:

- tokenize: `POST /v1/tokens` with a test card (four test numbers in turn) and the publishable
  key of a merchant made with the CLI, from keep-alive clients to the vault's browser origin;
- the anchor: pgbench with a one-INSERT script (a row about the size of a sealed card) on the
  same database, same clients, as long as the tokenize phase ran;
- forward: a local echo processor (uvicorn in a subprocess) called directly, then through the
  vault's mutual-TLS listener (`POST /internal/v1/forward` with the API's certificate) for
  exchanged cards; the overhead is the difference of the two latency percentiles;
- seal and open: `bastion.vault.envelope` in this process, with the local keyring and with a
  PKCS#11 keyring on a SoftHSM2 token of its own, single thread;
- with py-spy installed: profiles of the vault under tokenize and forward load, after the measured phases.

Every loop is bounded in count and time. Every token must be a 200 and the database must
then hold exactly the cards tokenized, every forward a 200 from the processor, every opened
card its plaintext, or the run fails.

    python bench/vault.py [--quick] [--count 5000] [--clients 16] [--database-url URL]

Writes bench/results/vault.json and rewrites its own section of docs/benchmarks.md
(`--quick` is a smoke run in seconds that writes only a temporary JSON).
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import orjson
import psutil  # type: ignore[import-untyped]  # no stubs in the locked dependencies
import uvloop

from bastion.kernel.ids import new_id
from bastion.platform.certs import CertPaths, client_ssl_context
from bastion.platform.db import Tenant
from bastion.platform.redaction import redact_text
from bastion.platform.vault_client import VaultClient
from bastion.vault.envelope import binding, open_sealed, seal
from bastion.vault.keyring import KeyEncryptionKeys, LocalKeyEncryptionKeys, Pkcs11KeyEncryptionKeys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.api, bench.ledger and the test helpers
from bench.api import (
    RATE_LIMIT_UNTHROTTLED,
    BenchFailed,
    HttpConnection,
    Phase,
    bounded_int,
    doc_markers,
    fetch_value,
    log_tail,
    machine,
    metric_table,
    percentile_ms,
    pgbench_binary,
    pgbench_command,
    pgbench_version,
    run_and_report,
    timed_request,
    verdict,
)
from bench.ledger import PHASE_TIME_LIMIT_S, Cpu, Meter, Rate, measure, revision, server_cpu
from tests.support.postgres import (
    ApiProcess,
    TestDatabase,
    accepts_connections,
    free_port,
    migrated_database,
    running_vault,
    server_url,
    stop_process,
)
from tests.support.softhsm import prepare_token

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
DOC_START, DOC_END = doc_markers("vault")

CLIENTS_DEFAULT = 16
CLIENTS_MAX = 64
FORWARD_CLIENTS = 8
VAULT_WORKERS = 2
COUNT_DEFAULT = 5_000
COUNT_MAX = 100_000
CLI_TIMEOUT_S = 60
PROCESS_START_TIMEOUT_S = 30.0
VAULT_CLIENT_TIMEOUT_S = 10.0
CRYPTO_TIME_LIMIT_S = 10.0
PROFILE_RATE_HZ = 200
PGBENCH_DURATION_MIN_S = 3
PGBENCH_DURATION_MAX_S = 60
ERROR_BODY_CHARS = 300
ECHO_KEEP_ALIVE_S = 60

TARGET_TOKENIZE_PER_S_MIN = 2_000.0
TARGET_TOKENIZE_P99_MS_MAX = 20.0
TARGET_FORWARD_OVERHEAD_P99_MS_MAX = 5.0

# Test numbers only, one per brand; Amex takes a four-digit security code.
TEST_CARDS = (
    ("4242424242424242", "123"),
    ("5555555555554444", "123"),
    ("378282246310005", "1234"),
    ("6011111111111117", "123"),
)
CARDHOLDER = "Ada Lovelace"
EXP_YEAR = datetime.now(UTC).year + 2
# About what bastion.js sends with a typed card.
SIGNALS = {
    "device": {
        "timezone": "Europe/London",
        "languages": ["en-GB", "en"],
        "screen": {"width": 1920, "height": 1080, "color_depth": 24, "pixel_ratio": 2.0},
        "platform": "Linux x86_64",
        "user_agent_sha256": "0" * 64,
    },
    "behaviour": {
        "keystroke_count": 19,
        "inter_key_interval_ms": {"mean": 142.0, "stdev": 38.5, "min": 61.0, "max": 290.0},
        "pasted": False,
        "time_to_complete_ms": 6400,
    },
}
# No {{card.cvc}}: the security code serves one forward, and each card here is forwarded many times.
FORWARD_TEMPLATE = {
    "method": "POST",
    "path": "/charge",
    "headers": {"Content-Type": "application/json"},
    "body": '{"number": "{{card.number}}", "exp": "{{card.exp_month}}/{{card.exp_year}}", "name": "{{card.name}}"}',
}
ECHO_ANSWER = orjson.dumps({"id": "ch_bench", "object": "charge", "status": "succeeded"})

# One INSERT per transaction of a row about the size of a sealed card: a time-ordered text key
# (as `new_id` makes), a merchant, a flag, about 200 bytes of ciphertext and a timestamp.
ANCHOR_TABLE = "bench_vault_anchor"
ANCHOR_CREATE = (
    f"CREATE TABLE {ANCHOR_TABLE} (id text PRIMARY KEY, merchant_id text NOT NULL, livemode boolean NOT NULL, "
    "sealed bytea NOT NULL, created_at timestamptz NOT NULL)"
)
ANCHOR_SCRIPT = (
    f"INSERT INTO {ANCHOR_TABLE} (id, merchant_id, livemode, sealed, created_at) VALUES ("
    "'crd_' || to_char(clock_timestamp(), 'YYYYMMDDHH24MISSUS') || substr(md5(random()::text), 1, 10), "
    "'mer_01JBENCHBENCHBENCHBENCHBEN', false, "
    "sha512(random()::text::bytea) || sha512(random()::text::bytea) || sha512(random()::text::bytea), now());\n"
)
_PGBENCH_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)
_PGBENCH_PROCESSED = re.compile(r"^number of transactions actually processed: ([0-9]+)", re.MULTILINE)
# py-spy --format raw: "frame;frame;... count", each frame "function (path:line)".
_RAW_LINE = re.compile(r"^(.*) ([0-9]+)$")
_FRAME = re.compile(r"^(?P<function>.+?) \((?P<path>[^()]*?)(?::[0-9]+)?\)$")
# Where the vault's time goes: the samples with one of these functions (qualified name, or any
# function when None; file) on their stack, in the order a request meets them; a sample counts
# once per part, and the parts nest.
ProfilePart = tuple[str, str | None, str]
_EDGE: ProfilePart = ("edge middleware and everything inside it", "EdgeMiddleware.__call__", "bastion/api/middleware.py")
_PARSING: ProfilePart = ("request parsing and validation (FastAPI)", "solve_dependencies", "fastapi/dependencies/utils.py")
_TRANSACTION: ProfilePart = ("transaction (pool, BEGIN, COMMIT)", "Database.transaction", "bastion/platform/db.py")
TOKENIZE_PARTS: tuple[ProfilePart, ...] = (
    _EDGE,
    _PARSING,
    ("the endpoint (routes.create_token)", "create_token", "bastion/vault/routes.py"),
    ("publishable key (cached after the first)", "Vault.publishable_key", "bastion/vault/service.py"),
    ("tokenize use case (service.tokenize)", "tokenize", "bastion/vault/service.py"),
    ("card checks (number, expiry, CVC, name)", "card_details", "bastion/vault/service.py"),
    ("fingerprint (HMAC-SHA256)", "fingerprint", "bastion/vault/envelope.py"),
    ("seal card and CVC (AES-GCM, key wraps)", "seal", "bastion/vault/envelope.py"),
    _TRANSACTION,
    ("begin write (tenant, shared lock)", "begin_write", "bastion/vault/repository.py"),
    ("insert card, CVC and token", "insert_card_and_token", "bastion/vault/repository.py"),
)
FORWARD_PARTS: tuple[ProfilePart, ...] = (
    ("TLS of the internal listener (asyncio's SSL protocol)", None, "asyncio/sslproto.py"),
    _EDGE,
    _PARSING,
    ("forward use case (service.forward)", "forward", "bastion/vault/service.py"),
    _TRANSACTION,
    ("open the card (AES-GCM, key unwrap)", "open_sealed", "bastion/vault/envelope.py"),
    ("call the processor (httpx)", "_send", "bastion/vault/service.py"),
    # httpcore imports sniffio on every request; when it is not installed, each import fails anew.
    ("httpcore's sniffio import", "current_async_library", "httpcore/_synchronization.py"),
    ("mask the answer (redact_text)", "redact_text", "bastion/platform/redaction.py"),
)


@dataclass(frozen=True)
class Sizes:
    """How much each phase does: the full run, or a smoke run in seconds."""

    tokenize: int
    warmup: int
    forward: int
    forward_serial: int
    forward_warmup: int
    sealed: int
    profile_s: int

    @classmethod
    def full(cls, count: int) -> "Sizes":
        return cls(tokenize=count, warmup=300, forward=2_000, forward_serial=500, forward_warmup=200, sealed=2_000, profile_s=15)

    @classmethod
    def quick(cls) -> "Sizes":
        return cls(tokenize=300, warmup=50, forward=200, forward_serial=50, forward_warmup=20, sealed=200, profile_s=3)


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    publishable: str

    @property
    def tenant(self) -> Tenant:
        return Tenant(merchant_id=self.merchant_id, livemode=False)


# Setup


def cli_json(database: TestDatabase, *arguments: str) -> dict[str, Any]:
    """`bastion <arguments> --json` on the benchmark's database."""
    result = subprocess.run(
        [sys.executable, "-m", "bastion", *arguments, "--json"],
        env=database.env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise BenchFailed(f"bastion {' '.join(arguments)} failed: {result.stderr.strip()[-2000:]}")
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def create_merchant(database: TestDatabase) -> Merchant:
    """A merchant and a test key, made as an operator would: with the CLI."""
    merchant = cli_json(database, "merchant", "create", "--name", "Vault benchmark")
    key = cli_json(database, "apikey", "create", "--merchant", merchant["id"], "--mode", "test")
    return Merchant(merchant_id=merchant["id"], publishable=key["publishable"])


def wait_for_port(port: int, process: "subprocess.Popen[bytes]", name: str, log: IO[bytes]) -> None:
    deadline = time.monotonic() + PROCESS_START_TIMEOUT_S
    while not accepts_connections(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise BenchFailed(f"{name} did not start on port {port}:\n{log_tail(log)}")
        time.sleep(0.1)


async def echo_processor(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The processor the forward phase calls: reads the request, answers a small JSON.
    Served by `uvicorn bench.vault:echo_processor` in a subprocess of its own."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(ECHO_ANSWER)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ECHO_ANSWER})


@contextmanager
def running_echo_processor() -> Iterator[str]:
    """The echo processor on 127.0.0.1, in its own process (uvicorn, as the vault is served); its base URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(REPO),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--lifespan",
        "off",
        # Longer than the vault's processor client keeps an idle connection (httpx: 5 s), as real
        # processors do: the vault, not the processor, closes idle connections.
        "--timeout-keep-alive",
        str(ECHO_KEEP_ALIVE_S),
        "bench.vault:echo_processor",
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, process, "the echo processor", log)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(process)


def vault_process(internal_port: int) -> psutil.Process:
    """The `bastion vault` this process started with that internal port."""
    marker = str(internal_port)
    for child in psutil.Process().children():
        command = child.cmdline()
        if "vault" in command and marker in command:
            return child
    raise BenchFailed("the bastion vault process was not found among this process's children")


def vault_logs(vault: ApiProcess) -> str:
    return redact_text(vault.logs()[-3000:])


# Tokenize


def token_request(port: int, publishable: str, number: str, cvc: str) -> bytes:
    card = {"number": number, "exp_month": 12, "exp_year": EXP_YEAR, "cvc": cvc, "name": CARDHOLDER}
    body = orjson.dumps({"card": card, "signals": SIGNALS})
    head = (
        "POST /v1/tokens HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {publishable}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def failure(index: int, status: int, body: bytes) -> str:
    # The vault never echoes a card number; masked all the same, this text may reach a terminal.
    return f"request {index}: HTTP {status}: {redact_text(body[:ERROR_BODY_CHARS].decode(errors='replace'))}"


def tokenize_client(port: int, merchant: Merchant) -> Callable[[Phase], Awaitable[None]]:
    requests = [token_request(port, merchant.publishable, number, cvc) for number, cvc in TEST_CARDS]

    async def client(phase: Phase) -> None:
        connection = await HttpConnection.open(port)
        try:
            while (index := phase.take()) is not None:
                answer = await timed_request(connection, requests[index % len(requests)], index, phase)
                if answer is None:
                    return
                status, body = answer
                if status != 200 or orjson.loads(body).get("object") != "token":
                    phase.fail(failure(index, status, body))
        finally:
            await connection.close()

    return client


async def load_for(seconds: float, clients: int, client: Callable[[Phase], Awaitable[None]]) -> Phase:
    """Load for `seconds`, not measured (a profile's)."""
    phase = Phase(first_index=0, count=COUNT_MAX, deadline=time.monotonic() + seconds)
    await asyncio.gather(*(client(phase) for _ in range(clients)))
    return phase


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass(frozen=True)
class Profiler:
    """py-spy on the vault process for `seconds`, its collapsed stacks kept in `directory`."""

    pid: int
    seconds: int
    directory: Path

    async def profile(
        self, name: str, parts: tuple[ProfilePart, ...], clients: int, client: Callable[[Phase], Awaitable[None]]
    ) -> dict[str, Any]:
        """The vault's samples while `clients` run `client` (not measured), summarized."""
        spy = py_spy()
        if spy is None:
            return {"available": False, "reason": "py-spy is not installed (pip install py-spy into .venv)"}
        output = self.directory / f"{name}.raw"
        command = [spy, "record", "--pid", str(self.pid), "--duration", str(self.seconds), "--rate", str(PROFILE_RATE_HZ)]
        command += ["--format", "raw", "--full-filenames", "--output", str(output)]
        print(f"profile: {self.seconds} s of {name} load under py-spy ...", flush=True)
        recorder = await asyncio.create_subprocess_exec(*command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            phase = await load_for(self.seconds + 1, clients, client)
            async with asyncio.timeout(PROCESS_START_TIMEOUT_S):
                _, errors = await recorder.communicate()
        finally:
            if recorder.returncode is None:
                recorder.kill()
                await recorder.wait()
        if phase.errors:
            raise BenchFailed(f"{phase.errors} failed requests while profiling, e.g. {phase.error_samples[0]}")
        if recorder.returncode != 0 or not output.exists():
            return {"available": False, "reason": f"py-spy failed: {errors.decode(errors='replace').strip()[-500:]}"}
        summary = summarize_profile(output.read_text(), parts)
        return {"available": True, "seconds": self.seconds, "clients": clients, "requests": len(phase.latencies_s), **summary}


def frame_parts(frame: str) -> tuple[str, str]:
    """A py-spy frame, `qualified.name (/full/path.py:line)`: its function and file."""
    matched = _FRAME.match(frame)
    return (matched.group("function"), matched.group("path")) if matched else (frame, "")


def package_of(path: str) -> str:
    """Who owns a file: `bastion.vault`, `fastapi`, `asyncio`, `hmac`... (`other` if unknown)."""
    parts = Path(path).parts
    if "site-packages" in parts:
        owned = parts[parts.index("site-packages") + 1 :]
    elif "bastion" in parts:
        owned = parts[parts.index("bastion") :]
        return ".".join(owned[:2]).removesuffix(".py")
    else:
        # The standard library: lib/python3.x/<module or package>.
        start = next((index + 1 for index, part in enumerate(parts) if part.startswith("python3")), len(parts))
        owned = parts[start:]
    return owned[0].removesuffix(".py") if owned else "other"


def summarize_profile(raw: str, parts: tuple[ProfilePart, ...]) -> dict[str, Any]:
    """Self time by package (the innermost frame's), and the share of samples inside each of `parts`."""
    total = 0
    own: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    for line in raw.splitlines():
        matched = _RAW_LINE.match(line)
        if matched is None:
            continue
        frames, count = [frame_parts(frame) for frame in matched.group(1).split(";")], int(matched.group(2))
        total += count
        own[package_of(frames[-1][1])] += count
        for label, function, path in parts:
            if any(function in {None, name} and file.endswith(path) for name, file in frames):
                inside[label] += count
    if total == 0:
        return {"samples": 0}
    return {
        "samples": total,
        "self_by_package": {name: round(n / total, 3) for name, n in own.most_common(12)},
        "inclusive": {label: round(inside[label] / total, 3) for label, _, _ in parts},
    }


# The pgbench anchor


def pgbench_insert(pgbench: Path, url: str, clients: int, seconds: int, server: Callable[[], float]) -> tuple[Rate, float]:
    """The one-INSERT script on the benchmark's database, in a table of its own, dropped after;
    with the mean size of the rows it wrote."""
    run = pgbench_command(pgbench, url)
    asyncio.run(fetch_value(url, ANCHOR_CREATE))
    try:
        with tempfile.NamedTemporaryFile("w", prefix="bastion-bench-vault-", suffix=".sql") as script:
            script.write(ANCHOR_SCRIPT)
            script.flush()
            meter = Meter(list, server)  # no Python here: only the server is measured
            before = meter.read()
            threads = min(clients, os.cpu_count() or 1)
            output = run("-n", "-f", script.name, "-c", str(clients), "-j", str(threads), "-T", str(seconds))
            cpu = meter.read() - before
        row_bytes = asyncio.run(mean_row_bytes(url, ANCHOR_TABLE))
    finally:
        asyncio.run(fetch_value(url, f"DROP TABLE IF EXISTS {ANCHOR_TABLE}"))
    tps, processed = _PGBENCH_TPS.search(output), _PGBENCH_PROCESSED.search(output)
    if tps is None or processed is None:
        raise BenchFailed(f"no tps in pgbench output:\n{output}")
    count = int(processed.group(1))
    return Rate(count, count / float(tps.group(1)), cpu), row_bytes


async def mean_row_bytes(url: str, table: str, *where: str) -> float:
    """Mean stored size of a table's rows (of one merchant's, given `where`: its id)."""
    condition = " WHERE merchant_id = $1" if where else ""
    return round(float(await fetch_value(url, f"SELECT avg(pg_column_size(t.*)) FROM {table} t{condition}", *where) or 0), 1)


async def tokenize_row_bytes(url: str, merchant_id: str) -> dict[str, float]:
    """What one tokenization writes: a card, its CVC and a token."""
    return {table: await mean_row_bytes(url, table, merchant_id) for table in ("vault.cards", "vault.cvcs", "vault.tokens")}


# Forward


async def exchanged_cards(vault_url: str, client: VaultClient, merchant: Merchant, count: int) -> list[str]:
    """`count` cards tokenized over HTTP and exchanged over mutual TLS (as the API does for a
    payment method): their vault card ids, which forward takes."""
    cards: list[str] = []
    async with httpx.AsyncClient(base_url=vault_url, timeout=VAULT_CLIENT_TIMEOUT_S) as browser:
        for index in range(count):
            number, cvc = TEST_CARDS[index % len(TEST_CARDS)]
            card = {"number": number, "exp_month": 12, "exp_year": EXP_YEAR, "cvc": cvc, "name": CARDHOLDER}
            created = await browser.post(
                "/v1/tokens", json={"card": card}, headers={"Authorization": f"Bearer {merchant.publishable}"}
            )
            if created.status_code != 200:
                raise BenchFailed(failure(index, created.status_code, created.content))
            exchanged = await client.exchange_token(merchant.tenant, created.json()["id"], new_id("pm"))
            cards.append(exchanged["vault_card_id"])
    return cards


def direct_body(index: int) -> bytes:
    """What the vault sends the processor for FORWARD_TEMPLATE, filled in."""
    number, _ = TEST_CARDS[index % len(TEST_CARDS)]
    return orjson.dumps({"number": number, "exp": f"12/{EXP_YEAR}", "name": CARDHOLDER})


def direct_client(processor: httpx.AsyncClient) -> Callable[[Phase], Awaitable[None]]:
    async def client(phase: Phase) -> None:
        while (index := phase.take()) is not None:
            body = direct_body(index)
            started = time.perf_counter()
            try:
                answer = await processor.post("/charge", content=body, headers={"Content-Type": "application/json"})
            except httpx.HTTPError as error:
                phase.fail(f"request {index}: {type(error).__name__}")
                return
            phase.latencies_s.append(time.perf_counter() - started)
            if answer.status_code != 200:
                phase.fail(failure(index, answer.status_code, answer.content))

    return client


def forward_client(vault: VaultClient, merchant: Merchant, cards: list[str]) -> Callable[[Phase], Awaitable[None]]:
    async def client(phase: Phase) -> None:
        while (index := phase.take()) is not None:
            started = time.perf_counter()
            try:
                answer = await vault.forward(
                    merchant.tenant, card=cards[index % len(cards)], connector="echo", request=FORWARD_TEMPLATE
                )
            except Exception as error:  # noqa: BLE001  (any failure is counted and fails the run)
                phase.fail(f"request {index}: {type(error).__name__}: {redact_text(str(error))}")
                return
            phase.latencies_s.append(time.perf_counter() - started)
            if answer["status"] != 200:
                phase.fail(f"request {index}: the processor answered {answer['status']} through the vault")

    return client


@dataclass(frozen=True)
class Forwarding:
    """The processor called directly and through the vault, by as many clients."""

    clients: int
    direct: Rate
    through: Rate


@asynccontextmanager
async def api_vault_client(database: TestDatabase) -> AsyncIterator[VaultClient]:
    """The API's client of the vault's internal listener, with the API's certificate."""
    internal_url = database.env()["BASTION_VAULT_INTERNAL_URL"]
    client = VaultClient(internal_url, client_ssl_context(CertPaths.under(database.data_dir)), timeout_s=VAULT_CLIENT_TIMEOUT_S)
    try:
        yield client
    finally:
        await client.close()


async def forward_rates(
    database: TestDatabase,
    vault_url: str,
    processor_url: str,
    merchant: Merchant,
    *,
    sizes: Sizes,
    meter: Meter,
    profiler: Profiler,
) -> tuple[Forwarding, Forwarding, dict[str, Any]]:
    """The processor called directly, then through the vault, with the same clients and count:
    by FORWARD_CLIENTS concurrent clients, then by one (the cost of a forward without queueing);
    then the vault's profile under forward load. Each phase through the vault has a client of
    its own: a connection left idle for the vault's keep-alive timeout (5 s, as long as httpx
    keeps it) can be closed by the vault just as it is reused (see docs/benchmarks.md)."""
    limits = httpx.Limits(max_connections=FORWARD_CLIENTS, max_keepalive_connections=FORWARD_CLIENTS)
    async with api_vault_client(database) as vault:
        cards = await exchanged_cards(vault_url, vault, merchant, FORWARD_CLIENTS)
    measured = []
    async with httpx.AsyncClient(base_url=processor_url, limits=limits, timeout=VAULT_CLIENT_TIMEOUT_S) as processor:
        for clients, count in ((FORWARD_CLIENTS, sizes.forward), (1, sizes.forward_serial)):
            print(f"forward: {sizes.forward_warmup} warm-up + {count} requests, {clients} client(s), direct ...", flush=True)
            direct = await measure(clients, count, sizes.forward_warmup, direct_client(processor), meter)
            print(f"forward: {sizes.forward_warmup} warm-up + {count} requests, {clients} client(s), through the vault ...")
            async with api_vault_client(database) as vault:
                through = await measure(clients, count, sizes.forward_warmup, forward_client(vault, merchant, cards), meter)
            measured.append(Forwarding(clients, direct, through))
    async with api_vault_client(database) as vault:
        profile = await profiler.profile("forward", FORWARD_PARTS, FORWARD_CLIENTS, forward_client(vault, merchant, cards))
    return measured[0], measured[1], profile


# Seal and open in-process


def crypto_rates(keys: KeyEncryptionKeys, count: int) -> dict[str, Any]:
    """Seal `count` card payloads under key version 1, then open them all, one thread; each
    loop also stops at CRYPTO_TIME_LIMIT_S."""
    keys.create_version(1)
    merchant = new_id("mer")
    payloads = []
    for index in range(count):
        number, _ = TEST_CARDS[index % len(TEST_CARDS)]
        # The shape tokenize seals: the number and the name, as JSON.
        payloads.append((orjson.dumps({"number": number, "name": CARDHOLDER}), binding(new_id("crd"), merchant, "card")))
    sealed = []
    deadline = time.monotonic() + CRYPTO_TIME_LIMIT_S
    started = time.perf_counter()
    for plaintext, aad in payloads:
        if time.monotonic() > deadline:
            break
        sealed.append((seal(keys, 1, plaintext, aad), aad, plaintext))
    seal_s = time.perf_counter() - started
    opened = 0
    deadline = time.monotonic() + CRYPTO_TIME_LIMIT_S
    started = time.perf_counter()
    for envelope, aad, plaintext in sealed:
        if time.monotonic() > deadline:
            break
        if open_sealed(keys, envelope, aad) != plaintext:
            raise BenchFailed(f"a card sealed with the {keys.provider} keyring opened to something else")
        opened += 1
    open_s = time.perf_counter() - started
    return {
        "available": True,
        "encrypt_per_s": round(len(sealed) / seal_s, 1),
        "decrypt_per_s": round(opened / open_s, 1),
        "sealed": len(sealed),
        "opened": opened,
    }


def local_crypto(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bastion-bench-keys-") as scratch:
        keys = LocalKeyEncryptionKeys(Path(scratch) / "keys")
        try:
            return crypto_rates(keys, count)
        finally:
            keys.close()


def pkcs11_crypto(count: int) -> dict[str, Any]:
    """On a SoftHSM2 token of its own, as the tests make one (or the one CI prepared)."""
    previous_conf = os.environ.get("SOFTHSM2_CONF")
    with tempfile.TemporaryDirectory(prefix="bastion-bench-softhsm-") as scratch:
        try:
            token = prepare_token(Path(scratch), label="bastion-bench")
        except RuntimeError as error:
            return {"available": False, "reason": str(error)}
        try:
            keys = Pkcs11KeyEncryptionKeys(token.module_path, token.token_label, token.pin)
            try:
                return {**crypto_rates(keys, count), "module": token.module_path}
            finally:
                keys.close()
        finally:
            # prepare_token points this process at its token; leave the environment as it was.
            if previous_conf is None:
                os.environ.pop("SOFTHSM2_CONF", None)
            else:
                os.environ["SOFTHSM2_CONF"] = previous_conf


# The run


def vault_env(processor_url: str) -> dict[str, str]:
    return {
        "BASTION_RATE_LIMIT_PER_S": RATE_LIMIT_UNTHROTTLED,
        "BASTION_RATE_LIMIT_BURST": RATE_LIMIT_UNTHROTTLED,
        "BASTION_LOG_LEVEL": "warning",
        "BASTION_VAULT_CONNECTORS": f"echo={processor_url}",
    }


def latency(rate: Rate) -> dict[str, Any]:
    return {
        "per_s": round(rate.tps, 1),
        "p50_ms": round(percentile_ms(rate.latencies_s, 0.50), 2),
        "p90_ms": round(percentile_ms(rate.latencies_s, 0.90), 2),
        "p99_ms": round(percentile_ms(rate.latencies_s, 0.99), 2),
        "max_ms": round(max(rate.latencies_s) * 1000, 2),
        "count": rate.count,
        "wall_s": round(rate.wall_s, 2),
    }


def forwarding_summary(forwarding: Forwarding) -> dict[str, Any]:
    direct, through = latency(forwarding.direct), latency(forwarding.through)
    return {
        "clients": forwarding.clients,
        "overhead_p50_ms": round(through["p50_ms"] - direct["p50_ms"], 2),
        "overhead_p99_ms": round(through["p99_ms"] - direct["p99_ms"], 2),
        "direct": direct,
        "through_vault": {**through, "cpu_per_request": cpu_per_request(forwarding.through.cpu, forwarding.through.count)},
    }


def cpu_per_request(cpu: Cpu, count: int) -> dict[str, float]:
    return {
        "vault_ms": round(cpu.python_s * 1000 / count, 3),
        "db_ms": round(cpu.db_s * 1000 / count, 3),
        "other_ms": round(cpu.other_s * 1000 / count, 3),
    }


def targets(tokenize: dict[str, Any], overhead_p99_ms: float) -> dict[str, dict[str, Any]]:
    return {
        "tokenize_per_s": {
            "value": tokenize["per_s"],
            "target": f">= {TARGET_TOKENIZE_PER_S_MIN:.0f}",
            "met": tokenize["per_s"] >= TARGET_TOKENIZE_PER_S_MIN,
        },
        "tokenize_p99_ms": {
            "value": tokenize["p99_ms"],
            "target": f"< {TARGET_TOKENIZE_P99_MS_MAX:.0f}",
            "met": tokenize["p99_ms"] < TARGET_TOKENIZE_P99_MS_MAX,
        },
        "forward_overhead_p99_ms": {
            "value": overhead_p99_ms,
            "target": f"< {TARGET_FORWARD_OVERHEAD_P99_MS_MAX:.0f}",
            "met": overhead_p99_ms < TARGET_FORWARD_OVERHEAD_P99_MS_MAX,
        },
    }


def tokenize_with_workers(
    database: TestDatabase,
    merchant: Merchant,
    env: dict[str, str],
    *,
    sizes: Sizes,
    clients: int,
    server: Callable[[], float],
) -> Rate:
    """The tokenize phase against `bastion vault --workers N` on ports of its own."""
    public, internal = free_port(), free_port()
    with running_vault(database, env, ports=(public, internal), workers=VAULT_WORKERS) as vault:
        supervisor = vault_process(internal)
        workers = supervisor.children()
        meter = Meter(lambda: [supervisor, *workers], server)
        client = tokenize_client(public, merchant)
        return with_vault_logs(vault, lambda: uvloop.run(measure(clients, sizes.tokenize, sizes.warmup, client, meter)))


def with_vault_logs(vault: ApiProcess, work: Callable[[], T]) -> T:
    try:
        return work()
    except BenchFailed as error:
        raise BenchFailed(f"{error}\nvault log tail:\n{vault_logs(vault)}") from None


def bench(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    clients = args.clients
    load_before = os.getloadavg()
    with ExitStack() as stack:
        admin_url, bin_dir = stack.enter_context(server_url(args.database_url))
        database = stack.enter_context(migrated_database(admin_url, bin_dir, name_prefix="bastion_bench"))
        merchant = create_merchant(database)
        server, server_scope = asyncio.run(server_cpu(database.owner_url))
        processor_url = stack.enter_context(running_echo_processor())
        vault = stack.enter_context(running_vault(database, vault_env(processor_url)))
        process = vault_process(database.vault_internal_port)
        meter = Meter(lambda: [process], server)
        client = tokenize_client(database.vault_port, merchant)

        print(f"tokenize: {sizes.warmup} warm-up + {sizes.tokenize} requests, {clients} clients ...", flush=True)
        tokenized = with_vault_logs(vault, lambda: uvloop.run(measure(clients, sizes.tokenize, sizes.warmup, client, meter)))
        stored = asyncio.run(
            fetch_value(database.owner_url, "SELECT count(*) FROM vault.cards WHERE merchant_id = $1", merchant.merchant_id)
        )
        if stored != sizes.warmup + tokenized.count:
            raise BenchFailed(f"{sizes.warmup + tokenized.count} cards tokenized over HTTP but {stored} in the vault")
        sizes_of_rows = asyncio.run(tokenize_row_bytes(database.owner_url, merchant.merchant_id))

        print(f"tokenize again with {VAULT_WORKERS} vault processes (--workers) ...", flush=True)
        spread = tokenize_with_workers(database, merchant, vault_env(processor_url), sizes=sizes, clients=clients, server=server)
        stored = asyncio.run(
            fetch_value(database.owner_url, "SELECT count(*) FROM vault.cards WHERE merchant_id = $1", merchant.merchant_id)
        )
        if stored != 2 * sizes.warmup + tokenized.count + spread.count:
            raise BenchFailed(f"{2 * sizes.warmup + tokenized.count + spread.count} cards tokenized but {stored} in the vault")

        seconds = min(PGBENCH_DURATION_MAX_S, max(PGBENCH_DURATION_MIN_S, round(tokenized.wall_s)))
        print(f"pgbench: one INSERT per transaction, {clients} clients for {seconds} s ...", flush=True)
        pgbench_path = pgbench_binary(bin_dir)
        anchor, anchor_row_bytes = pgbench_insert(pgbench_path, database.owner_url, clients, seconds, server)

        profile_dir = args.profile_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bastion-bench-")))
        profile_dir.mkdir(parents=True, exist_ok=True)
        profiler = Profiler(process.pid, sizes.profile_s, profile_dir)
        tokenize_profile = uvloop.run(profiler.profile("tokenize", TOKENIZE_PARTS, clients, client))

        concurrent, serial, forward_profile = with_vault_logs(
            vault,
            lambda: uvloop.run(
                forward_rates(database, vault.url, processor_url, merchant, sizes=sizes, meter=meter, profiler=profiler)
            ),
        )
        box = machine(database.owner_url, pgbench_version(pgbench_path))

    print(f"seal and open: {sizes.sealed} cards with each keyring, one thread ...", flush=True)
    local = local_crypto(sizes.sealed)
    pkcs11 = pkcs11_crypto(sizes.sealed)

    tokenize = latency(tokenized)
    forward = forwarding_summary(concurrent)
    # The target is judged on one client: what a forward costs through the vault. With
    # FORWARD_CLIENTS on two shared cores both series queue, and the difference of two
    # independently measured p99s is mostly queueing (it has even come out negative).
    alone = forwarding_summary(serial)
    return {
        "tokenize_per_s": tokenize["per_s"],
        "tokenize_p50_ms": tokenize["p50_ms"],
        "tokenize_p99_ms": tokenize["p99_ms"],
        "pgbench_insert_tps": round(anchor.tps, 1),
        "tokenize_to_pgbench": round(tokenized.tps / anchor.tps, 3),
        "forward_overhead_p50_ms": alone["overhead_p50_ms"],
        "forward_overhead_p99_ms": alone["overhead_p99_ms"],
        "decrypt_per_s_local": local["decrypt_per_s"],
        "decrypt_per_s_pkcs11": pkcs11.get("decrypt_per_s"),
        "encrypt_per_s_local": local["encrypt_per_s"],
        "encrypt_per_s_pkcs11": pkcs11.get("encrypt_per_s"),
        "targets": targets(tokenize, alone["overhead_p99_ms"]),
        "tokenize": {
            **tokenize,
            "clients": clients,
            "warmup": sizes.warmup,
            "cpu_per_request": cpu_per_request(tokenized.cpu, tokenized.count),
            "row_bytes": sizes_of_rows,
        },
        "tokenize_workers": {
            **latency(spread),
            "workers": VAULT_WORKERS,
            "clients": clients,
            "warmup": sizes.warmup,
            "cpu_per_request": cpu_per_request(spread.cpu, spread.count),
        },
        "pgbench_insert": {
            "tps": round(anchor.tps, 1),
            "transactions": anchor.count,
            "clients": clients,
            "duration_s": seconds,
            "db_cpu_ms_per_transaction": round(anchor.cpu.db_s * 1000 / anchor.count, 3),
            "row_bytes": anchor_row_bytes,
            "script": ANCHOR_SCRIPT.strip(),
        },
        "forward": {
            **forward,
            "serial": alone,
            "warmup": sizes.forward_warmup,
            "template": FORWARD_TEMPLATE,
        },
        "crypto": {"local": local, "pkcs11": pkcs11},
        "profiles": {"tokenize": tokenize_profile, "forward": forward_profile},
        "db_cpu_scope": server_scope,
        "machine": {**box, "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "quick": args.quick,
        "revision": revision(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# Report


def rate_or_missing(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else "not measured"


def table(results: dict[str, Any]) -> str:
    checks, tokenize, forward = results["targets"], results["tokenize"], results["forward"]
    cpu = tokenize["cpu_per_request"]
    spread = results["tokenize_workers"]
    spread_cpu = spread["cpu_per_request"]
    direct, through, serial = forward["direct"], forward["through_vault"], forward["serial"]

    def target(name: str) -> tuple[str, str]:
        return checks[name]["target"], verdict(checks[name]["met"])

    rows = [
        ("tokenize: tokens/s over HTTP", f"{results['tokenize_per_s']:,.0f}", *target("tokenize_per_s")),
        ("tokenize: p50 latency", f"{results['tokenize_p50_ms']:.1f} ms", "", ""),
        ("tokenize: p99 latency", f"{results['tokenize_p99_ms']:.1f} ms", *target("tokenize_p99_ms")),
        (
            "tokenize: CPU ms per token, vault / PostgreSQL / other",
            f"{cpu['vault_ms']:.2f} / {cpu['db_ms']:.2f} / {cpu['other_ms']:.2f}",
            "",
            "",
        ),
        (
            f"tokenize, {spread['workers']} vault processes: tokens/s, p50 / p99",
            f"{spread['per_s']:,.0f}, {spread['p50_ms']:.1f} / {spread['p99_ms']:.1f} ms",
            "",
            "",
        ),
        (
            f"tokenize, {spread['workers']} vault processes: CPU ms per token, vault / PostgreSQL / other",
            f"{spread_cpu['vault_ms']:.2f} / {spread_cpu['db_ms']:.2f} / {spread_cpu['other_ms']:.2f}",
            "",
            "",
        ),
        ("pgbench one-INSERT script: tps, same database", f"{results['pgbench_insert_tps']:,.0f}", "", ""),
        ("tokenize / pgbench", f"{results['tokenize_to_pgbench']:.2f}", "", ""),
        (
            f"forward, {forward['clients']} clients: processor directly, p50 / p99",
            f"{direct['p50_ms']:.2f} / {direct['p99_ms']:.2f} ms ({direct['per_s']:,.0f}/s)",
            "",
            "",
        ),
        (
            f"forward, {forward['clients']} clients: through the vault (mTLS), p50 / p99",
            f"{through['p50_ms']:.2f} / {through['p99_ms']:.2f} ms ({through['per_s']:,.0f}/s)",
            "",
            "",
        ),
        (
            f"forward, {forward['clients']} clients: overhead p50 / p99 (queueing included)",
            f"{forward['overhead_p50_ms']:.2f} / {forward['overhead_p99_ms']:.2f} ms",
            "",
            "",
        ),
        (
            "forward, 1 client: processor directly, p50 / p99",
            f"{serial['direct']['p50_ms']:.2f} / {serial['direct']['p99_ms']:.2f} ms",
            "",
            "",
        ),
        ("forward, 1 client: overhead p50", f"{results['forward_overhead_p50_ms']:.2f} ms", "", ""),
        (
            "forward, 1 client: overhead p99",
            f"{results['forward_overhead_p99_ms']:.2f} ms",
            *target("forward_overhead_p99_ms"),
        ),
        (
            "open a sealed card, local keyring: per s",
            rate_or_missing(results["decrypt_per_s_local"]),
            "",
            "",
        ),
        (
            "open a sealed card, PKCS#11 (SoftHSM2): per s",
            rate_or_missing(results["decrypt_per_s_pkcs11"]),
            "",
            "",
        ),
        (
            "seal a card, local / PKCS#11: per s",
            f"{rate_or_missing(results['encrypt_per_s_local'])} / {rate_or_missing(results['encrypt_per_s_pkcs11'])}",
            "",
            "",
        ),
    ]
    return metric_table(rows)


def profile_note(name: str, profile: dict[str, Any]) -> str:
    if not profile["available"]:
        return f"*{name}*: not taken ({profile['reason']})."
    if not profile.get("samples"):
        return f"*{name}*: py-spy recorded no samples."
    lines = [
        f"*{name}* ({profile['clients']} clients for {profile['seconds']} s, {profile['samples']:,} samples):",
        "",
        f"| {name}: samples inside | share |",
        "|---|---|",
        *(f"| {label} | {share:.0%} |" for label, share in profile["inclusive"].items()),
        "",
        "Self time by package: " + ", ".join(f"{package} {share:.0%}" for package, share in profile["self_by_package"].items()),
    ]
    return "\n".join(lines)


def doc_section(results: dict[str, Any]) -> str:
    box, tokenize, anchor, forward = results["machine"], results["tokenize"], results["pgbench_insert"], results["forward"]
    rows = tokenize["row_bytes"]
    pkcs11 = results["crypto"]["pkcs11"]
    pkcs11_note = (
        f"a PKCS#11 keyring on a SoftHSM2 token of its own ({pkcs11['module']})"
        if pkcs11["available"]
        else f"PKCS#11 not measured: {pkcs11['reason']}"
    )
    return f"""{DOC_START}
## Vault: tokenize, forward, seal and open

Latest run: {results["timestamp"]} (revision {results["revision"]})

{table(results)}

Machine: {box["nproc"]} cores ({box["cpu_model"]}), {box["memory_gb"]} GB, {box["os"]}, Python {box["python"]},
PostgreSQL {box["postgres"]}; load average {box["load_average_before"][0]:.2f} before the run.

Method (`bench/vault.py`), on one fresh migrated database (certificates and the first vault key made as
`bastion migrate` does), with one real `bastion vault` process (log level warning, rate limit out of the way):

- *tokenize*: `POST /v1/tokens` to the vault's browser origin with the publishable key of a merchant made with
  `bastion merchant create` and `bastion apikey create`, a test card (Visa, Mastercard, Amex, Discover in turn,
  with CVC and name) and device and behaviour signals as bastion.js sends them, from {tokenize["clients"]}
  keep-alive HTTP/1.1 clients: {tokenize["warmup"]} warm-up requests, then {tokenize["count"]:,} measured
  (capped at {PHASE_TIME_LIMIT_S:.0f} s). Each token writes a card ({rows["vault.cards"]:.0f} bytes), its CVC
  ({rows["vault.cvcs"]:.0f} bytes) and the token ({rows["vault.tokens"]:.0f} bytes, with the signals) in one
  INSERT, after a statement that sets the tenant and takes the shared key-version lock, in one transaction.
  Then the same phase against a second vault, `bastion vault --workers {results["tokenize_workers"]["workers"]}`
  on ports of its own. Afterwards the vault must hold exactly the cards tokenized. CPU per token: the vault
  process(es), PostgreSQL ({results["db_cpu_scope"]}), everything else (mostly the load generator).
- *the anchor*: pgbench with a one-statement script, `-c {anchor["clients"]} -T {anchor["duration_s"]}` (the
  tokenize phase's length), each transaction inserting one row of about the card's size
  ({anchor["row_bytes"]:.0f} bytes: a time-ordered text key, a merchant, a flag, 192 random bytes, a
  timestamp) into a table of its own with only its primary key, on the same database
  ({anchor["db_cpu_ms_per_transaction"]:.2f} ms of PostgreSQL CPU per transaction).
- *forward*: an echo processor (a small ASGI app under uvicorn, its own process on 127.0.0.1, answering a small
  JSON) as connector `echo`; {forward["clients"]} concurrent clients send {forward["direct"]["count"]:,}
  requests (after {forward["warmup"]} warm-up) straight to it with httpx, then as many through the vault
  (and again with one client, {forward["serial"]["direct"]["count"]:,} requests each way: the cost without queueing):
  `VaultClient.forward` (httpx, mutual TLS with the API's certificate) to `POST /internal/v1/forward` for
  {forward["clients"]} cards tokenized over HTTP and exchanged over mutual TLS, with a template of number,
  expiry and name (no CVC: it serves one forward). The vault reads the card, opens it, fills the template,
  calls the processor and masks its answer. Overhead = the percentile through the vault minus the same
  percentile direct. The target is judged with one client, the cost of a forward; with
  {forward["clients"]} clients on these shared cores both series queue, so their difference is mostly
  queueing (it can even come out negative when the direct series has the worse stall).
- *seal and open*: `bastion.vault.envelope.seal` then `open_sealed` of {results["crypto"]["local"]["sealed"]:,}
  card payloads (number and name) in this process, one thread, with the local keyring (key files) and with
  {pkcs11_note}.

Profiles of the vault process under the same loads after the measured phases (py-spy at {PROFILE_RATE_HZ} Hz,
pausing the vault for each sample so that stacks are whole, idle excluded; not measured), as shares of the
samples (the parts nest; `other` in self time: frozen modules, such as the import machinery):

{profile_note("tokenize", results["profiles"]["tokenize"])}

{profile_note("forward", results["profiles"]["forward"])}

The load generator, the vault, the echo processor and PostgreSQL share the same cores.

Reproduce: `make bench`, or `.venv/bin/python bench/vault.py` (`--quick`: a smoke run that writes only a
temporary JSON); add `--database-url postgresql://user:pass@host/postgres` (or set `BASTION_BENCH_DATABASE_URL`)
to run against an existing server, where a private database and roles are created and dropped. The profiles
need py-spy (`.venv/bin/pip install py-spy`; not a dependency); `--profile-dir DIR` keeps their stacks.
{DOC_END}"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Tokenize, forward, seal and open cards in the vault, against pgbench.")
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds; writes only a temporary JSON")
    parser.add_argument("--count", type=bounded_int(1, COUNT_MAX), default=COUNT_DEFAULT, help="measured tokenizations")
    parser.add_argument("--clients", type=bounded_int(1, CLIENTS_MAX), default=CLIENTS_DEFAULT, help="tokenize clients")
    parser.add_argument(
        "--profile-dir", type=Path, help="keep the vault's sampled stacks here (py-spy raw format, for flame graphs)"
    )
    # Not bench.api's add_server_arguments: its --api-workers has no meaning for the one vault process.
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BASTION_BENCH_DATABASE_URL"),
        help="an admin URL of an existing server (default: a fresh embedded PostgreSQL)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    sizes = Sizes.quick() if args.quick else Sizes.full(args.count)
    run_and_report("vault", lambda: bench(args, sizes), table, doc_section, quick=args.quick)


if __name__ == "__main__":
    main()
