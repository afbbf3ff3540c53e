"""The commands that run Bastion: `migrate`, `api`, `worker`, and `serve`, which runs them all."""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated

import httpx
import typer
import uvloop

from bastion import bootstrap
from bastion.cli.common import fail, install
from bastion.platform import migrate as migrations
from bastion.platform.embedded_pg import EmbeddedPostgres
from bastion.platform.grant import GRANT_ENV, Grant
from bastion.platform.logging import configure_logging, console_line
from bastion.platform.settings import Settings
from bastion.vault.server import bound_socket
from bastion.worker import run_worker

_CHILD_STOP_TIMEOUT_S = 15
# Secrets in serve's environment that no child gets: each has its own part in its grant. libpq's
# PGPASSWORD too, which asyncpg would otherwise fall back on.
_SERVE_ONLY = frozenset({"BASTION_DATABASE_URL", "BASTION_PKCS11_PIN", "PGPASSWORD"})
# How long serve waits for every listener to answer, and how often and how patiently it asks.
_START_TIMEOUT_S = 60
_PROBE_INTERVAL_S = 0.1
_PROBE_TIMEOUT_S = 1.0
# How long the last lines of a stopped child may take to reach the terminal.
_CONSOLE_DRAIN_TIMEOUT_S = 2.0


def migrate() -> None:
    """Create or upgrade the schema and the service roles (safe to run at any time)."""
    settings = Settings.from_env()
    with bootstrap.owner_url_for_command(settings) as url:
        install(settings, url)
    typer.echo(f"migrated to {migrations.head_revision()}")


def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="API processes sharing the port.")] = 1,
) -> None:
    """Run the API server alone (`serve` runs it with the worker)."""
    import uvicorn

    settings = Settings.from_env()
    configure_logging(settings.log_level, log_file=settings.log_file("api"))
    grant = Grant.received()
    if grant is not None and workers != 1:
        raise fail("a grant from `bastion serve` serves one API process: run it with --workers 1")
    # Run alone, each API process builds its app, and its grant, from the data directory.
    app = bootstrap.api_app(settings, grant) if grant is not None else "bastion.bootstrap:create_api"
    uvicorn.run(app, factory=grant is None, host=host, port=port, workers=workers, log_config=None, access_log=False)


@dataclass(frozen=True)
class _Child:
    """A process `serve` started, named as its command and its log file; `console` shows its
    stderr on ours, in short form, when `serve` is not verbose."""

    name: str
    process: "subprocess.Popen[bytes]"
    console: threading.Thread | None

    @classmethod
    def start(cls, arguments: list[str], env: dict[str, str], grant: Grant, *, verbose: bool) -> "_Child":
        name = arguments[0]
        process = subprocess.Popen(
            [sys.executable, "-m", "bastion", *arguments],
            env={**env, GRANT_ENV: "stdin"},
            stdin=subprocess.PIPE,
            stderr=None if verbose else subprocess.PIPE,
        )
        assert process.stdin is not None  # noqa: S101  (asked for just above)
        # A child that died at once is named, with its log, by the start-up wait that follows.
        with contextlib.suppress(BrokenPipeError):
            grant.send(process.stdin)
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
        return fail(f"the {self.name} stopped {when} (exit code {self.process.returncode}); its log: {log_file}")


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
                    raise fail(f"cannot listen on {host}: {reason}; check --host") from None
                raise fail(f"cannot listen on {host}:{port}: {reason}; choose another port with {option}") from None


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
            raise fail(f"{waiting[0].listener} did not answer within {_START_TIMEOUT_S} s; the logs: {log_dir}")
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


def serve(
    *,
    host: Annotated[str, typer.Option(help="Address the API and the vault listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the API listens on.")] = 8000,
    vault_port: Annotated[int, typer.Option(help="Port of the vault's browser origin (card fields).")] = 8001,
    vault_internal_port: Annotated[int, typer.Option(help="Port of the vault's mutual-TLS listener.")] = 8002,
    acquirer_port: Annotated[int, typer.Option(help="Port of the sandbox acquirer's HTTPS listener.")] = 8003,
    acquirer_pages_port: Annotated[
        int, typer.Option(help="Port of the sandbox acquirer's cardholder pages (the 3-D Secure challenge).")
    ] = 8004,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Every process's full JSON log on the terminal, not only warnings and errors.")
    ] = False,
    demo: Annotated[
        bool, typer.Option("--demo", help="Also serve the demo shop (a test merchant's checkout page) on the API's origin.")
    ] = False,
) -> None:
    """Run the platform: database (embedded unless BASTION_DATABASE_URL is set), migrations, API, vault,
    sandbox acquirer and worker."""
    # Before anything starts: a taken port is one line, with nothing to stop.
    # The mutual-TLS listener serves only the API beside it, and the sandbox acquirer only the API
    # and the vault: on loopback, whatever --host says.
    _ensure_ports_free(
        [
            ("--port", host, port),
            ("--vault-port", host, vault_port),
            ("--vault-internal-port", "127.0.0.1", vault_internal_port),
            ("--acquirer-port", "127.0.0.1", acquirer_port),
            ("--acquirer-pages-port", "127.0.0.1", acquirer_pages_port),
        ]
    )
    settings = Settings.from_env()
    stopping = False
    # A browser cannot use 0.0.0.0 as an origin: a wildcard address is shown as loopback.
    browser_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104  (compared, not bound)

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
        install(settings, url)
        if demo:
            asyncio.run(bootstrap.demo_shop_create(settings, url, f"http://{_url_host(browser_host)}:{port}"))
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    vault_public = os.environ.get("BASTION_VAULT_PUBLIC_URL", f"http://{_url_host(browser_host)}:{vault_port}")
    log_dir = settings.log_dir or settings.data_dir / "logs"
    # Each child gets its grant on stdin; the secrets serve was given stay with serve.
    env = {
        **{name: value for name, value in os.environ.items() if name not in _SERVE_ONLY},
        "BASTION_DATA_DIR": str(settings.data_dir),
        "BASTION_LOG_DIR": str(log_dir),
        "BASTION_VAULT_PUBLIC_URL": vault_public,
        "BASTION_VAULT_INTERNAL_URL": f"https://127.0.0.1:{vault_internal_port}",
        "BASTION_ACQUIRER_URL": f"https://127.0.0.1:{acquirer_port}",
        "BASTION_ACQUIRER_NOTIFY_URL": f"http://127.0.0.1:{port}",
        "BASTION_DEMO": "on" if demo else "off",
    }
    vault_command = [
        *("vault", "--host", host, "--port", str(vault_port)),
        *("--internal-host", "127.0.0.1", "--internal-port", str(vault_internal_port)),
    ]
    # Asked where a browser would ask: a wildcard address is not one to connect to.
    probe_host = _url_host(browser_host)
    probes = [
        _Probe(f"the API on port {port}", lambda: _http_answers(f"http://{probe_host}:{port}/healthz")),
        _Probe(f"the vault on port {vault_port}", lambda: _http_answers(f"http://{probe_host}:{vault_port}/healthz")),
        _Probe(f"the vault on port {vault_internal_port}", lambda: _accepts_connections("127.0.0.1", vault_internal_port)),
        _Probe(f"the acquirer on port {acquirer_port}", lambda: _accepts_connections("127.0.0.1", acquirer_port)),
        _Probe(
            f"the acquirer's pages on port {acquirer_pages_port}",
            lambda: _http_answers(f"http://127.0.0.1:{acquirer_pages_port}/healthz"),
        ),
    ]
    grants = {
        "vault": bootstrap.vault_grant(settings, url),
        "api": bootstrap.api_grant(settings, url, demo=demo),
        "worker": bootstrap.worker_grant(settings, url),
        "acquirer": bootstrap.acquirer_grant(settings, url),
    }
    children: list[_Child] = []
    ended: _Child | None = None  # the child whose exit stopped the others
    try:
        acquirer_command = [
            *("acquirer", "--host", "127.0.0.1", "--port", str(acquirer_port)),
            *("--pages-port", str(acquirer_pages_port)),
        ]
        for arguments in (vault_command, acquirer_command, ["api", "--host", host, "--port", str(port)], ["worker"]):
            # One by one: all started get stopped.
            children.append(_Child.start(arguments, env, grants[arguments[0]], verbose=verbose))  # noqa: PERF401
        if not _wait_until_answering(children, probes, lambda: stopping, log_dir):
            return
        base = f"http://{probe_host}:{port}"
        demo_line = f"  demo:  {base}/demo/checkout\n" if demo else ""
        typer.echo(
            f"Bastion is running.\n  API:   {base}/v1\n  docs:  {base}/docs\n{demo_line}"
            f"  vault: {vault_public} (card fields)\n"
            f"  acquirer: https://127.0.0.1:{acquirer_port} (the sandbox acquirer of test payments; "
            f"its 3-D Secure pages on http://127.0.0.1:{acquirer_pages_port})\n"
            f"  data:  {settings.data_dir}\n  logs:  {log_dir}"
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


def _url_host(host: str) -> str:
    """`host` as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def worker() -> None:
    """Run the background worker: outbox relay, webhook sender, audit sealer, janitors."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, log_file=settings.log_file("worker"))
    grant = Grant.received() or bootstrap.worker_grant(settings, bootstrap.owner_url(settings))
    # uvloop, as uvicorn runs the API: the sender's many small HTTP exchanges spend much of their
    # time in the event loop.
    uvloop.run(run_worker(settings, grant))
