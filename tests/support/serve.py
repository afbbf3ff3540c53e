"""`bastion serve` as a user runs it: on free ports of 127.0.0.1, against a database of the
caller's, stopped at the end with everything it started; and, for clients that need a whole
Bastion (the official SDKs), a started one with merchants and keys made for each test."""

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]  # no stubs in the locked dependencies
import pytest

from tests.support.platform import Credentials, merchant_with_key
from tests.support.postgres import ONE_CLIENT_FOR_ALL_SHOPPERS, TestDatabase, free_port, migrated_database, stop_process
from tests.support.vault import card

SERVE_OPTIONS = ("--port", "--vault-port", "--vault-internal-port", "--acquirer-port", "--acquirer-pages-port")
BANNER = "Bastion is running."
_BANNER_LAST_LINE = re.compile(r"^  a test key: .* --json$", re.MULTILINE)
BANNER_TIMEOUT_S = 90
_GONE_TIMEOUT_S = 5
_REQUEST_TIMEOUT_S = 20


@dataclass(frozen=True)
class Serve:
    process: "subprocess.Popen[bytes]"
    output: Path
    ports: dict[str, int]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['--port']}"

    @property
    def vault_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['--vault-port']}"

    def printed(self) -> str:
        """What serve and its processes wrote to the terminal (stdout and stderr) so far."""
        return self.output.read_text(errors="replace")

    def wait_until(self, condition: Callable[[str], bool], timeout_s: float, what: str) -> str:
        """The output, once `condition` holds for it; fails after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not condition(printed := self.printed()):
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout_s} s: {printed[-3000:]}")
            time.sleep(0.05)
        return printed

    def after_banner(self) -> list[str]:
        """The lines printed after the banner, once the whole banner is printed."""

        def banner_printed(printed: str) -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"bastion serve exited with {self.process.returncode}: {printed[-3000:]}")
            return _BANNER_LAST_LINE.search(printed) is not None

        printed = self.wait_until(banner_printed, BANNER_TIMEOUT_S, "banner")
        banner_end = _BANNER_LAST_LINE.search(printed)
        assert banner_end is not None
        return printed[banner_end.end() :].splitlines()[1:]

    def left_running(self) -> list[psutil.Process]:
        """What serve started that still runs after it (the whole session: serve leads its own)."""
        members: list[psutil.Process] = []
        for process in psutil.process_iter():
            try:
                if os.getsid(process.pid) == self.process.pid and process.status() != psutil.STATUS_ZOMBIE:
                    members.append(process)
            except (psutil.NoSuchProcess, ProcessLookupError):
                continue
        _gone, alive = psutil.wait_procs(members, timeout=_GONE_TIMEOUT_S)
        return list(alive)


def serve_environment(database: TestDatabase, log_dir: Path) -> dict[str, str]:
    """The environment of a serve on `database` with logs in `log_dir`; the vault's and the
    acquirer's URLs are serve's to set."""
    env = {name: value for name, value in database.env().items() if not name.startswith(("BASTION_VAULT_", "BASTION_ACQUIRER_"))}
    return {**env, "BASTION_LOG_DIR": str(log_dir)}


def free_serve_ports() -> dict[str, int]:
    return {option: free_port() for option in SERVE_OPTIONS}


@contextmanager
def serving(env: dict[str, str], output: Path, *options: str, ports: dict[str, int] | None = None) -> Iterator[Serve]:
    """`bastion serve` on 127.0.0.1 (`ports`, default free ones), stopped at the end with whatever it started."""
    ports = ports or free_serve_ports()
    command = [sys.executable, "-m", "bastion", "serve", "--host", "127.0.0.1"]
    command += [word for option, port in ports.items() for word in (option, str(port))]
    with output.open("wb") as terminal:
        # Its own session, to find everything it started.
        process = subprocess.Popen(
            [*command, *options], env=env, stdout=terminal, stderr=subprocess.STDOUT, start_new_session=True
        )
    serve = Serve(process, output, ports)
    try:
        yield serve
    finally:
        if process.poll() is None:
            stop_process(process)
        for leftover in serve.left_running():
            leftover.kill()


@dataclass(frozen=True)
class LiveBastion:
    """A started `bastion serve` and its database."""

    serve: Serve
    database: TestDatabase

    def merchant(self, *, scopes: list[str] | None = None) -> Credentials:
        """A new merchant and a test-mode key (`scopes`, default all)."""
        return asyncio.run(merchant_with_key(self.database, "SDK contract shop", scopes=scopes))

    def card_token(self, credentials: Credentials, number: str) -> str:
        """A single-use token of the test card `number`, made at the vault's origin with the
        publishable key, as a shop's page makes it."""
        response = httpx.post(
            f"{self.serve.vault_url}/v1/tokens",
            json={"card": card(number=number)},
            headers={"Authorization": f"Bearer {credentials.publishable}"},
            timeout=_REQUEST_TIMEOUT_S,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["id"]
        return token


@contextmanager
def live_bastion(pg_server: tuple[str, Path | None], directory: Path, env: dict[str, str] | None = None) -> Iterator[LiveBastion]:
    """`bastion serve` on a database of its own, once its banner says every listener answers;
    `env` changes its settings. Every shopper of a test comes from 127.0.0.1."""
    with migrated_database(*pg_server) as database:
        changes = {**ONE_CLIENT_FOR_ALL_SHOPPERS, **(env or {})}
        with serving({**serve_environment(database, directory / "logs"), **changes}, directory / "terminal.txt") as serve:
            serve.after_banner()
            yield LiveBastion(serve, database)
