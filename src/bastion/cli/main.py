"""`bastion`: serve, migrate, and administer merchants, keys and the audit trail."""

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any, TypeVar

import asyncpg
import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.exc import SQLAlchemyError, StatementError
from typer.core import TyperGroup

from bastion import bootstrap, ledger
from bastion.audit import VerifyReport, verify_chain
from bastion.kernel.errors import BastionError
from bastion.kernel.ids import new_id
from bastion.merchants import add_allowed_origin, allowed_origins, create_api_key, create_merchant, remove_allowed_origin
from bastion.platform import migrate as migrations
from bastion.platform.certs import CertPaths, uvicorn_ssl_options
from bastion.platform.db import Actor, Database, ServiceRoles, Tenant, UnitOfWork
from bastion.platform.embedded_pg import EmbeddedPostgres
from bastion.platform.logging import configure_logging, console_line
from bastion.platform.settings import Settings
from bastion.vault import rotation
from bastion.vault.scan import PanScan, scan_database, scan_logs
from bastion.vault.server import VAULT_WORKERS_MAX, VaultSockets, bound_socket, serve_vault, supervise
from bastion.worker import run_worker


def _fail(message: str) -> typer.Exit:
    # One line whatever the source: third-party messages can carry DETAIL/HINT lines or a log tail.
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return typer.Exit(code=1)


def _expected_failure(error: Exception) -> str | None:
    """What to tell the user about a failure they can fix (input, configuration, the database);
    None for a bug, which keeps its traceback."""
    if isinstance(error, BastionError):
        return error.message
    if isinstance(error, StatementError):
        # Not str(error): that carries the SQL and its parameters.
        return f"database error: {error.orig}"
    if isinstance(error, SQLAlchemyError | asyncpg.PostgresError | asyncpg.InterfaceError):
        return f"database error: {error}"
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return f"cannot reach the database: {error}"
    if isinstance(error, OSError):
        return str(error)
    return None


class _Commands(TyperGroup):
    """Every command, nested groups included, runs inside this invoke: one place turns expected
    failures into one `error:` line on stderr and exit code 1."""

    # Any: typer vendors click privately, so the Context base type has no public name.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            message = _expected_failure(error)
            if message is None:
                raise
            raise _fail(message) from None


app = typer.Typer(
    cls=_Commands, help="Bastion, a self-hosted payments platform.", no_args_is_help=True, pretty_exceptions_enable=False
)
merchant_app = typer.Typer(help="Manage merchants.", no_args_is_help=True)
apikey_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(merchant_app, name="merchant")
app.add_typer(apikey_app, name="apikey")
audit_app = typer.Typer(help="Check the audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
ledger_app = typer.Typer(help="Inspect and check the ledger; create platform accounts.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
origins_app = typer.Typer(help="The browser origins allowed to frame a merchant's card fields.", no_args_is_help=True)
merchant_app.add_typer(origins_app, name="origins")
certs_app = typer.Typer(help="The mutual-TLS certificates between the API and the vault.", no_args_is_help=True)
app.add_typer(certs_app, name="certs")
keys_app = typer.Typer(help="The vault's key-encryption keys: status and rotation.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
vault_app = typer.Typer(help="Run the card vault, or check that no card number escaped it.", invoke_without_command=True)
app.add_typer(vault_app, name="vault")

T = TypeVar("T")
_CHILD_STOP_TIMEOUT_S = 15
# How long serve waits for every listener to answer, and how often and how patiently it asks.
_START_TIMEOUT_S = 60
_PROBE_INTERVAL_S = 0.1
_PROBE_TIMEOUT_S = 1.0
# How long the last lines of a stopped child may take to reach the terminal.
_CONSOLE_DRAIN_TIMEOUT_S = 2.0
_CLI_ACTOR = Actor(id=f"cli:{os.environ.get('USER', 'unknown')}")


def _print(resource: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(resource))
    else:
        for key, value in resource.items():
            typer.echo(f"{key}: {value}")


async def _with_owner_database(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    database = bootstrap.owner_database(url)
    try:
        return await work(database)
    finally:
        await database.dispose()


def _migrate(settings: Settings, url: str) -> None:
    """Everything an install needs, made once: keyring, certificates, schema, the vault's first key."""
    bootstrap.keyring_create(settings)
    bootstrap.certs_create(settings)
    asyncio.run(migrations.upgrade(url, settings.data_dir, ServiceRoles(settings.db_role_prefix)))
    asyncio.run(bootstrap.vault_keys_create(settings, url))


@app.command()
def migrate() -> None:
    """Create or upgrade the schema and the service roles (safe to run at any time)."""
    settings = Settings.from_env()
    with bootstrap.owner_url_for_command(settings) as url:
        _migrate(settings, url)
    typer.echo(f"migrated to {migrations.head_revision()}")


@merchant_app.command("create")
def merchant_create(
    name: Annotated[str, typer.Option(help="The merchant's display name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a merchant."""
    settings = Settings.from_env()

    async def work(database: Database) -> dict[str, Any]:
        async with database.unit_of_work(Tenant(merchant_id=new_id("mer"), livemode=False), _CLI_ACTOR) as uow:
            return await create_merchant(uow, name)

    with bootstrap.owner_url_for_command(settings) as url:
        _print(asyncio.run(_with_owner_database(url, work)), as_json)


@apikey_app.command("create")
def apikey_create(
    merchant: Annotated[str, typer.Option(help="The merchant id, mer_...")],
    mode: Annotated[str, typer.Option(help="test or live.")] = "test",
    scope: Annotated[list[str] | None, typer.Option(help="A scope to grant; repeat for several. Default: all.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API key; its secrets are printed once and stored only as keyed hashes."""
    if mode not in ("test", "live"):
        raise _fail("--mode must be test or live")
    settings = Settings.from_env()
    hasher = bootstrap.key_hasher(settings)

    async def work(database: Database) -> dict[str, Any]:
        async with database.unit_of_work(Tenant(merchant_id=merchant, livemode=mode == "live"), _CLI_ACTOR) as uow:
            issued = await create_api_key(uow, hasher, scope)
        return {
            "id": issued.id,
            "merchant": issued.merchant_id,
            "livemode": issued.livemode,
            "scopes": issued.scopes,
            "secret": issued.secret,
            "publishable": issued.publishable,
        }

    with bootstrap.owner_url_for_command(settings) as url:
        _print(asyncio.run(_with_owner_database(url, work)), as_json)


def _origins_command(merchant: str, change: Callable[[UnitOfWork], Awaitable[list[str]]]) -> None:
    settings = Settings.from_env()

    async def work(database: Database) -> list[str]:
        # Origins belong to the merchant, not to a mode; the audit row records test mode.
        async with database.unit_of_work(Tenant(merchant_id=merchant, livemode=False), _CLI_ACTOR) as uow:
            return await change(uow)

    with bootstrap.owner_url_for_command(settings) as url:
        origins = asyncio.run(_with_owner_database(url, work))
    typer.echo("\n".join(origins) if origins else "(no origins: the card fields cannot be framed anywhere)")


@origins_app.command("add")
def origins_add(
    merchant: Annotated[str, typer.Option(help="The merchant id, mer_...")],
    origin: Annotated[str, typer.Argument(help="A page origin like https://shop.example (http only for localhost).")],
) -> None:
    """Allow pages of ORIGIN to frame the merchant's card fields; prints the merchant's origins."""
    _origins_command(merchant, lambda uow: add_allowed_origin(uow, origin))


@origins_app.command("remove")
def origins_remove(
    merchant: Annotated[str, typer.Option(help="The merchant id, mer_...")],
    origin: Annotated[str, typer.Argument(help="An origin registered earlier.")],
) -> None:
    """Stop allowing ORIGIN; prints the merchant's origins."""
    _origins_command(merchant, lambda uow: remove_allowed_origin(uow, origin))


@origins_app.command("list")
def origins_list(merchant: Annotated[str, typer.Option(help="The merchant id, mer_...")]) -> None:
    """The merchant's registered origins."""
    _origins_command(merchant, allowed_origins)


@certs_app.command("init")
def certs_init() -> None:
    """Create the private CA and the vault's and API's certificates, if they do not exist (`migrate` does it too)."""
    settings = Settings.from_env()
    created = bootstrap.certs_create(settings)
    where = settings.data_dir / "certs"
    typer.echo(f"certificates created in {where}" if created else f"certificates already present in {where}")


@keys_app.command("status")
def keys_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Key versions, their state, and how many cards and CVCs each one wraps."""
    settings = Settings.from_env()

    async def work(database: Database) -> list[dict[str, Any]]:
        return await rotation.key_status(database)

    with bootstrap.owner_url_for_command(settings) as url:
        versions = asyncio.run(_with_owner_database(url, work))
    if as_json:
        typer.echo(json.dumps(versions))
        return
    typer.echo(f"keyring: {settings.vault_keyring}")
    for version in versions:
        typer.echo(
            f"v{version['version']}  {version['state']:<8}  {version['provider']:<6}  "
            f"cards {version['cards']:>8}  cvcs {version['cvcs']:>6}"
        )


@keys_app.command("rotate")
def keys_rotate(
    batch_size: Annotated[
        int, typer.Option(min=1, max=rotation.BATCH_SIZE_MAX, help="Data keys re-wrapped per transaction.")
    ] = 500,
) -> None:
    """Make a new key version active and re-wrap every data key under it, in batches; run it again
    to finish a rotation that was interrupted. The old version is retired once nothing refers to it."""
    settings = Settings.from_env()
    keys = bootstrap.vault_keys(settings)

    async def work(database: Database) -> rotation.RotationReport:
        total = await rotation.stale_count(database)
        with Progress(
            TextColumn("re-wrapping"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
        ) as progress:
            # The total is known only after the new version is active; until then, what is stale now.
            task = progress.add_task("rotate", total=total or None)

            def advance(done: int) -> None:
                progress.update(task, advance=done, total=max(total, progress.tasks[0].completed + done))

            return await rotation.rotate(database, keys, batch_size=batch_size, on_batch=advance)

    try:
        with bootstrap.owner_url_for_command(settings) as url:
            report = asyncio.run(_with_owner_database(url, work))
    finally:
        keys.close()
    resumed = " (finished an interrupted rotation)" if report.resumed else ""
    retired = ", ".join(f"v{version}" for version in report.retired_versions) or "none"
    typer.echo(f"active key version: v{report.active_version}{resumed}; re-wrapped {report.rewrapped}; retired: {retired}")


@audit_app.command("verify")
def audit_verify(as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Recompute the audit hash chain and check every signed checkpoint (reads only; seals nothing)."""
    settings = Settings.from_env()

    async def work(database: Database) -> VerifyReport:
        return await verify_chain(database, bootstrap.keyring(settings))

    with bootstrap.owner_url_for_command(settings) as url:
        report = asyncio.run(_with_owner_database(url, work))
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(report)))
        if not report.ok:
            raise typer.Exit(code=1)
        return
    if not report.ok:
        where = f" at seq {report.first_bad_seq}" if report.first_bad_seq is not None else ""
        raise _fail(f"audit chain broken{where}: {report.reason}")
    typer.echo(f"audit chain intact: {report.rows_checked} rows, {report.checkpoints_checked} checkpoints")


def _moment(text: str) -> datetime:
    """An ISO 8601 time with its offset, or Unix seconds."""
    try:
        moment = datetime.fromtimestamp(int(text), UTC) if text.isdigit() else datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        raise _fail(f"--as-of {text!r} is neither an ISO 8601 time nor Unix seconds") from None
    if moment.tzinfo is None:
        raise _fail(f"--as-of {text!r} has no timezone: add one, like 2026-11-23T12:00:00+00:00 or Z")
    return moment


@ledger_app.command("balance")
def ledger_balance(
    account: Annotated[str, typer.Argument(help="The ledger account id, la_... (any merchant's, or the platform's).")],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="The balance at this moment: ISO 8601 with a timezone, or Unix seconds.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """An account's balance now or at a past moment: posted, pending, available and the four counters (reads only)."""
    moment = _moment(as_of) if as_of is not None else None
    settings = Settings.from_env()

    async def work(database: Database) -> dict[str, Any]:
        async with database.transaction() as connection:
            return await ledger.balance_any_tenant(connection, account, moment)

    with bootstrap.owner_url_for_command(settings) as url:
        _print(asyncio.run(_with_owner_database(url, work)), as_json)


@ledger_app.command("check")
def ledger_check(as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Check every invariant of the ledger over the whole journal; exit 1 with the first violation (reads only)."""
    settings = Settings.from_env()

    async def work(database: Database) -> ledger.Violation | ledger.JournalSummary:
        # One snapshot: entries committed while the check runs cannot look like faults.
        async with database.connection() as connection, connection.transaction(isolation="repeatable_read", readonly=True):
            return await ledger.check_journal(connection)

    with bootstrap.owner_url_for_command(settings) as url:
        result = asyncio.run(_with_owner_database(url, work))
    ok = isinstance(result, ledger.JournalSummary)
    if as_json:
        typer.echo(json.dumps({"ok": ok, **dataclasses.asdict(result)}))
        if not ok:
            raise typer.Exit(code=1)
        return
    if isinstance(result, ledger.Violation):
        raise _fail(f"ledger check failed ({result.invariant}): {result.message}")
    typer.echo(f"ledger consistent: {result.entries} entries, {result.postings} postings, {result.accounts} accounts checked")


@ledger_app.command("create-account")
def ledger_create_account(
    currency: Annotated[str, typer.Option(help="ISO 4217 code, like USD.")],
    type_: Annotated[ledger.AccountType, typer.Option("--type", help="The account type.")],
    code: Annotated[str | None, typer.Option(help="A unique code for the account, like fees-usd.")] = None,
    stripes: Annotated[int, typer.Option(help="Balance rows, for an account many payments post to at once.")] = 1,
    live: Annotated[bool, typer.Option("--live", help="A live-mode account (default: test mode).")] = False,
) -> None:
    """Create a platform account (a fee account, say); prints its id."""
    settings = Settings.from_env()
    draft = ledger.AccountDraft(currency=currency, type=type_, code=code, stripes=stripes)

    async def work(database: Database) -> dict[str, Any]:
        async with database.unit_of_work(Tenant(merchant_id=ledger.PLATFORM_MERCHANT_ID, livemode=live), _CLI_ACTOR) as uow:
            return await ledger.create_account(uow, draft)

    with bootstrap.owner_url_for_command(settings) as url:
        created = asyncio.run(_with_owner_database(url, work))
    typer.echo(created["id"])


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="API processes sharing the port.")] = 1,
) -> None:
    """Run the API server alone (`serve` runs it with the worker)."""
    import uvicorn

    settings = Settings.from_env()
    configure_logging(settings.log_level, log_file=settings.log_file("api"))
    uvicorn.run(
        "bastion.bootstrap:create_api",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
    )


@dataclass(frozen=True)
class _Child:
    """A process `serve` started, named as its command and its log file; `console` shows its
    stderr on ours, in short form, when `serve` is not verbose."""

    name: str
    process: "subprocess.Popen[bytes]"
    console: threading.Thread | None

    @classmethod
    def start(cls, arguments: list[str], env: dict[str, str], *, verbose: bool) -> "_Child":
        name = arguments[0]
        process = subprocess.Popen(
            [sys.executable, "-m", "bastion", *arguments], env=env, stderr=None if verbose else subprocess.PIPE
        )
        console = None
        if process.stderr is not None:
            console = threading.Thread(target=_show_console, args=(name, process.stderr), name=f"console-{name}", daemon=True)
            console.start()
        return cls(name, process, console)

    def finish_console(self) -> None:
        """Once it has stopped: wait until what it wrote last is on the terminal (a little, at most)."""
        if self.console is not None:
            self.console.join(_CONSOLE_DRAIN_TIMEOUT_S)

    def stopped(self, when: str, log_dir: Path) -> typer.Exit:
        """One line saying that it stopped, after its own last words."""
        self.finish_console()
        log_file = log_dir / f"{self.name}.log"
        return _fail(f"the {self.name} stopped {when} (exit code {self.process.returncode}); its log: {log_file}")


def _show_console(name: str, stderr: IO[bytes]) -> None:
    with stderr:
        for raw in stderr:
            line = console_line(name, raw.decode(errors="replace"))
            if line is not None:
                typer.echo(line, err=True)


@dataclass(frozen=True)
class _Probe:
    """One listener `serve` waits for before it says that Bastion is running."""

    listener: str
    answers: Callable[[], bool]


def _http_answers(url: str) -> bool:
    try:
        # trust_env off: a proxy from the environment must not stand between serve and its own children.
        return httpx.get(url, timeout=_PROBE_TIMEOUT_S, trust_env=False).status_code == httpx.codes.OK
    except httpx.TransportError:
        return False


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _ensure_ports_free(listeners: list[tuple[str, str, int]]) -> None:
    """Each (option, host, port) can be listened on, or one line naming the port and the option
    that changes it. All are held at once, so one port given to two options fails too."""
    with contextlib.ExitStack() as held:
        for option, host, port in listeners:
            try:
                # Listening too: two sockets with SO_REUSEADDR may share a port until one listens.
                held.enter_context(bound_socket(host, port)).listen()
            except OSError as error:
                reason = (error.strerror or str(error)).lower()
                if isinstance(error, socket.gaierror):
                    raise _fail(f"cannot listen on {host}: {reason}; check --host") from None
                raise _fail(f"cannot listen on {host}:{port}: {reason}; choose another port with {option}") from None


def _wait_until_answering(
    children: list[_Child], probes: list[_Probe], stop_requested: Callable[[], bool], log_dir: Path
) -> bool:
    """True once every probe answers with every child still running; False if a stop was asked
    for meanwhile. A child that stops, or a listener silent for _START_TIMEOUT_S, ends it with one line."""
    deadline = time.monotonic() + _START_TIMEOUT_S
    waiting = probes
    while not stop_requested():
        for child in children:
            if child.process.poll() is not None:
                raise child.stopped("during start-up", log_dir)
        waiting = [probe for probe in waiting if not probe.answers()]
        if not waiting:
            return True
        if time.monotonic() > deadline:
            raise _fail(f"{waiting[0].listener} did not answer within {_START_TIMEOUT_S} s; the logs: {log_dir}")
        time.sleep(_PROBE_INTERVAL_S)
    return False


def _stop(children: list[_Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.process.wait(timeout=_CHILD_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
        child.finish_console()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address the API and the vault listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the API listens on.")] = 8000,
    vault_port: Annotated[int, typer.Option(help="Port of the vault's browser origin (card fields).")] = 8001,
    vault_internal_port: Annotated[int, typer.Option(help="Port of the vault's mutual-TLS listener.")] = 8002,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Every process's full JSON log on the terminal, not only warnings and errors.")
    ] = False,
) -> None:
    """Run the platform: database (embedded unless BASTION_DATABASE_URL is set), migrations, API, vault and worker."""
    # Before anything starts: a taken port is one line, with nothing to stop.
    # The mutual-TLS listener serves only the API beside it: on loopback, whatever --host says.
    _ensure_ports_free(
        [("--port", host, port), ("--vault-port", host, vault_port), ("--vault-internal-port", "127.0.0.1", vault_internal_port)]
    )
    settings = Settings.from_env()
    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    # Before anything starts, so that a signal during start-up still stops what did start.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    embedded = EmbeddedPostgres(settings.data_dir) if settings.database_url is None else None
    try:
        if embedded is not None:
            embedded.start()
        url = embedded.url() if embedded is not None else bootstrap.owner_url(settings)
        _migrate(settings, url)
        asyncio.run(bootstrap.demo_shop_create(settings, url, f"http://{host}:{port}"))
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    # A browser cannot use 0.0.0.0 as an origin: a wildcard address is shown as loopback.
    browser_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104  (compared, not bound)
    vault_public = os.environ.get("BASTION_VAULT_PUBLIC_URL", f"http://{browser_host}:{vault_port}")
    log_dir = settings.log_dir or settings.data_dir / "logs"
    env = {
        **os.environ,
        "BASTION_DATABASE_URL": url,
        "BASTION_DATA_DIR": str(settings.data_dir),
        "BASTION_LOG_DIR": str(log_dir),
        "BASTION_VAULT_PUBLIC_URL": vault_public,
        "BASTION_VAULT_INTERNAL_URL": f"https://127.0.0.1:{vault_internal_port}",
    }
    vault_command = [
        *("vault", "--host", host, "--port", str(vault_port)),
        *("--internal-host", "127.0.0.1", "--internal-port", str(vault_internal_port)),
    ]
    # Asked where a browser would ask: a wildcard address is not one to connect to.
    probe_host = f"[{browser_host}]" if ":" in browser_host else browser_host
    probes = [
        _Probe(f"the API on port {port}", lambda: _http_answers(f"http://{probe_host}:{port}/healthz")),
        _Probe(f"the vault on port {vault_port}", lambda: _http_answers(f"http://{probe_host}:{vault_port}/healthz")),
        _Probe(f"the vault on port {vault_internal_port}", lambda: _accepts_connections("127.0.0.1", vault_internal_port)),
    ]
    children: list[_Child] = []
    ended: _Child | None = None  # the child whose exit stopped the others
    try:
        for arguments in (vault_command, ["api", "--host", host, "--port", str(port)], ["worker"]):
            children.append(_Child.start(arguments, env, verbose=verbose))  # noqa: PERF401  (one by one: all started get stopped)
        if not _wait_until_answering(children, probes, lambda: stopping, log_dir):
            return
        base = f"http://{host}:{port}"
        typer.echo(
            f"Bastion is running.\n  API:   {base}/v1\n  docs:  {base}/docs\n  demo:  {base}/demo/checkout\n"
            f"  vault: {vault_public} (card fields)\n  data:  {settings.data_dir}\n  logs:  {log_dir}"
        )
        # The command as it was invoked (`.venv/bin/bastion` under `make run`), so the hint can be pasted as is.
        bastion = sys.argv[0] if sys.argv[0].endswith("bastion") else "bastion"
        typer.echo(
            f"  a test key: {bastion} merchant create --name Demo --json, "
            f"then {bastion} apikey create --merchant mer_... --mode test --json"
        )
        while not stopping and ended is None:
            time.sleep(0.2)
            ended = next((child for child in children if child.process.poll() is not None), None)
    finally:
        _stop(children)
        if embedded is not None:
            embedded.stop()
    if ended is not None and not stopping:
        raise ended.stopped("unexpectedly", log_dir)


@app.command()
def worker() -> None:
    """Run the background worker: outbox relay, audit sealer, janitor."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, log_file=settings.log_file("worker"))
    url = bootstrap.owner_url(settings)
    asyncio.run(run_worker(settings, url))


def _serve_vault_process(sockets: VaultSockets, janitor: bool) -> None:
    """One vault process; `bastion vault --workers N` spawns N of them."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, log_file=settings.log_file("vault"))
    runtime = bootstrap.vault_runtime(settings, bootstrap.owner_url(settings))
    ssl_options = uvicorn_ssl_options(CertPaths.under(settings.data_dir))
    asyncio.run(serve_vault(runtime, sockets, ssl_options, janitor=janitor))


@vault_app.callback()
def vault(
    ctx: typer.Context,
    *,
    host: Annotated[str, typer.Option(help="Address of the browser origin's listener.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the browser origin (card fields, bastion.js, tokens).")] = 8001,
    internal_host: Annotated[str, typer.Option(help="Address of the mutual-TLS listener the API calls.")] = "127.0.0.1",
    internal_port: Annotated[int, typer.Option(help="Port of the mutual-TLS listener the API calls.")] = 8002,
    workers: Annotated[
        int, typer.Option(min=1, max=VAULT_WORKERS_MAX, help="Vault processes sharing both ports (one of them sweeps).")
    ] = 1,
) -> None:
    """Run the card vault (its own origin and its mutual-TLS listener), unless a subcommand is given."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        sockets = VaultSockets.bind((host, port), (internal_host, internal_port))
    except OSError as error:
        raise _fail(f"cannot listen on {host}:{port} and {internal_host}:{internal_port}: {error.strerror}") from None
    if workers == 1:
        _serve_vault_process(sockets, janitor=True)
        return
    forward_timeout_s = Settings.from_env().vault_forward_timeout_s
    raise typer.Exit(supervise(_serve_vault_process, sockets, workers=workers, forward_timeout_s=forward_timeout_s))


@vault_app.command("scan-pan")
def vault_scan_pan(
    logs: Annotated[Path | None, typer.Option(help="The logs directory (default: the data directory's logs).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Search the API's tables (events included) and the logs for anything that looks like a card
    number; exit 1 if anything is found. Findings are shown as BIN and last 4 only."""
    settings = Settings.from_env()
    log_dir = logs or settings.log_dir or settings.data_dir / "logs"

    async def work(database: Database) -> PanScan:
        async with database.connection() as connection:
            return await scan_database(connection, "public")

    with bootstrap.owner_url_for_command(settings) as url:
        in_database = asyncio.run(_with_owner_database(url, work))
    in_logs = (
        scan_logs(log_dir)
        if log_dir.is_dir()
        else PanScan(findings=[], incomplete=[f"no logs directory at {log_dir}: the logs were not scanned"])
    )
    findings = in_database.findings + in_logs.findings
    for note in in_database.incomplete + in_logs.incomplete:
        typer.echo(f"warning: {note}", err=True)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(finding) for finding in findings]))
    else:
        for finding in findings:
            typer.echo(f"{finding.location}: {finding.masked}")
        typer.echo(f"{len(findings)} card number(s) found outside the vault" if findings else "no card numbers found")
    if findings:
        raise typer.Exit(code=1)
    if not (in_database.clean and in_logs.clean):
        raise _fail("the scan was incomplete (see the warnings): it proves nothing about what it did not read")


def main() -> None:
    app(prog_name="bastion")
