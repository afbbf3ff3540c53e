"""`bastion vault --workers N`: N spawned processes serve the same two ports; they stop
together on SIGTERM, and when one dies the others are stopped and the vault exits 1."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import httpx
import psutil  # type: ignore[import-untyped]  # no stubs in the locked dependencies
import pytest

from bastion.kernel.ids import new_id
from bastion.platform.certs import CertPaths, client_ssl_context
from bastion.platform.db import Tenant
from bastion.platform.vault_client import VaultClient
from bastion.vault.server import VaultSockets
from tests.support.logs import log_records
from tests.support.platform import Credentials
from tests.support.postgres import ONE_CLIENT_FOR_ALL_SHOPPERS, TestDatabase, accepts_connections, free_port
from tests.support.vault import card

pytestmark = pytest.mark.processes

WORKERS = 2
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
TOKENS = 20
CONCURRENT_TOKENS = 4
TOKEN_ROUNDS_MAX = 50


@contextmanager
def workers_vault(database: TestDatabase, public: int, internal: int) -> Iterator[tuple["subprocess.Popen[bytes]", IO[bytes]]]:
    command = [sys.executable, "-m", "bastion", "vault", "--port", str(public), "--internal-port", str(internal)]
    with tempfile.TemporaryFile() as log:
        env = {**database.env(), **ONE_CLIENT_FOR_ALL_SHOPPERS}
        process = subprocess.Popen([*command, "--workers", str(WORKERS)], env=env, stdout=log, stderr=log)
        try:
            yield process, log
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(STOP_TIMEOUT_S)
            for child in spawned(process):
                child.kill()


def spawned(process: "subprocess.Popen[bytes]") -> list[psutil.Process]:
    try:
        children = psutil.Process(process.pid).children()
    except psutil.NoSuchProcess:
        return []
    return [child for child in children if any("spawn_main" in part for part in child.cmdline())]


def wait_for_workers(process: "subprocess.Popen[bytes]", public: int, internal: int) -> list[psutil.Process]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "the vault exited while starting"
        workers = spawned(process)
        if len(workers) == WORKERS and all(accepts_connections(port) for port in (public, internal)):
            return workers
        time.sleep(0.1)
    raise AssertionError(f"{WORKERS} vault processes did not start within {START_TIMEOUT_S} s")


def log_text(log: IO[bytes]) -> str:
    # pread: the processes share the file offset, so a seek here would move their writes.
    size = os.fstat(log.fileno()).st_size
    return os.pread(log.fileno(), size, 0).decode(errors="replace")


async def test_workers_serve_both_ports_and_stop_together(test_database: TestDatabase, merchant: Credentials) -> None:
    public, internal = free_port(), free_port()
    with workers_vault(test_database, public, internal) as (process, log):
        workers = wait_for_workers(process, public, internal)

        async def tokenize() -> str:
            # A connection each, so that the kernel may hand each to either process.
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{public}", timeout=10) as client:
                response = await client.post(
                    "/v1/tokens", json={"card": card()}, headers={"Authorization": f"Bearer {merchant.publishable}"}
                )
            assert response.status_code == 200, response.text
            return str(response.json()["id"])

        def served_by() -> set[int]:
            return {record["pid"] for record in log_records(log_text(log).splitlines()) if record.get("path") == "/v1/tokens"}

        # Concurrent, so that one process busy with a request leaves the next to the other; and
        # until each has served some: the shared sockets accept before the second one is up.
        tokens: list[str] = []
        for _ in range(TOKEN_ROUNDS_MAX):
            tokens += await asyncio.gather(*[tokenize() for _ in range(CONCURRENT_TOKENS)])
            if len(tokens) >= TOKENS and len(served_by()) == WORKERS:
                break
        context = client_ssl_context(CertPaths.under(test_database.data_dir))
        client = VaultClient(f"https://127.0.0.1:{internal}", context, timeout_s=10)
        try:
            tenant = Tenant(merchant_id=merchant.merchant_id, livemode=False)
            exchanged = await client.exchange_token(tenant, tokens[-1], new_id("pm"))
        finally:
            await client.close()
        assert exchanged["last4"] == "4242"

        process.send_signal(signal.SIGTERM)
        assert process.wait(STOP_TIMEOUT_S) == 0, log_text(log)
        assert not any(worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE for worker in workers)
        assert not accepts_connections(public)
        assert served_by() == {worker.pid for worker in workers}, "every process serves a share of the requests"


async def test_a_dead_worker_stops_the_others_and_the_vault_exits_1(test_database: TestDatabase) -> None:
    public, internal = free_port(), free_port()
    with workers_vault(test_database, public, internal) as (process, log):
        first, second = wait_for_workers(process, public, internal)
        second.kill()
        assert process.wait(STOP_TIMEOUT_S) == 1, log_text(log)
        assert not (first.is_running() and first.status() != psutil.STATUS_ZOMBIE)
        assert "vault_process_exited" in log_text(log)


def test_a_port_taken_is_a_clear_error(test_database: TestDatabase) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "bastion", "vault", "--port", str(port), "--internal-port", str(free_port())],
            env=test_database.env(),
            capture_output=True,
            text=True,
            timeout=STOP_TIMEOUT_S,
            check=False,
        )
    assert result.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Address already in use" in result.stderr


def test_the_shared_sockets_say_they_are_tcp() -> None:
    # asyncio turns Nagle off (TCP_NODELAY) on accepted connections only for a socket whose
    # protocol is IPPROTO_TCP; left 0, every answer of the vault waited on a delayed ACK.
    sockets = VaultSockets.bind(("127.0.0.1", 0), ("127.0.0.1", 0))
    try:
        assert sockets.public.proto == sockets.internal.proto == socket.IPPROTO_TCP
    finally:
        sockets.public.close()
        sockets.internal.close()
