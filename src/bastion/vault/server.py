"""`bastion vault`: the two listeners of the vault in one process, and its janitor; with
`--workers`, several such processes on the same two sockets.

The public listener is the browser origin of the card fields; the internal one accepts
only clients presenting a certificate of the install's private CA (the API)."""

import asyncio
import contextlib
import math
import multiprocessing
import multiprocessing.connection
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from bastion.platform.heap import freeze_startup_objects
from bastion.platform.logging import bind_log_fields, get_logger
from bastion.platform.metrics import HttpMetrics
from bastion.platform.vault_client import VAULT_KEEP_ALIVE_S
from bastion.vault.app import create_internal_app, create_public_app
from bastion.vault.rotation import check_keyring
from bastion.vault.service import Vault, sweep

# Expired CVCs must be gone within the hour they are allowed (PCI DSS 3.3.1); a sweep
# every minute keeps them well inside it.
SWEEP_INTERVAL_S = 60.0
VAULT_WORKERS_MAX = 64
_SHUTDOWN_MARGIN_S = 1
_log = get_logger(__name__)


class _Server(uvicorn.Server):
    """Signals are handled once for both listeners (see `serve_vault`), not by each."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _sweep_forever(vault: Vault) -> None:
    while True:
        try:
            deleted = await sweep(vault)
        except Exception:  # noqa: BLE001  (the janitor outlives a failed round; the next one retries)
            _log.exception("vault_sweep_failed")
        else:
            if deleted:
                _log.info("vault_swept", rows_deleted=deleted)
        await asyncio.sleep(SWEEP_INTERVAL_S)


def graceful_shutdown_s(forward_timeout_s: float) -> int:
    """How long requests in flight get on SIGTERM: as long as a forward may take, and a second."""
    return math.ceil(forward_timeout_s) + _SHUTDOWN_MARGIN_S


@dataclass(frozen=True)
class VaultSockets:
    """Both listeners' sockets, bound once before any vault process starts: with `--workers`
    every process serves the same two ports, and the kernel gives each connection to one."""

    public: socket.socket
    internal: socket.socket

    @classmethod
    def bind(cls, public: tuple[str, int], internal: tuple[str, int]) -> "VaultSockets":
        return cls(public=bound_socket(*public), internal=bound_socket(*internal))


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` as Bastion's listeners bind theirs, not yet listening."""
    # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY on accepted connections only when
    # the socket says it is TCP, and without it every answer waits on a delayed ACK (~40 ms).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bound = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        bound.bind((host, port))
    except OSError:
        bound.close()
        raise
    bound.set_inheritable(True)
    return bound


async def _serve_listener(server: _Server, listener: socket.socket, name: str) -> None:
    # Both servers log uvicorn's lines ("Started server process [pid]", "Shutting down", ...)
    # in one process: the listener's name, bound in this task's context, tells them apart.
    # Requests accepted here run in a copy of this context, so their records carry it too.
    bind_log_fields(listener=name)
    await server.serve(sockets=[listener])


async def serve_vault(vault: Vault, sockets: VaultSockets, ssl_options: dict[str, Any], *, janitor: bool) -> None:
    """Serve both listeners until SIGINT or SIGTERM; `janitor` in one vault process only."""
    await check_keyring(vault.database, vault.keys)
    common: dict[str, Any] = {
        "log_config": None,
        "access_log": False,
        "lifespan": "off",
        "server_header": False,
        "timeout_keep_alive": VAULT_KEEP_ALIVE_S,
        # On SIGTERM a request in flight gets as long as a forward may take, and then the
        # listeners close regardless: closing an idle TLS keep-alive connection (the API's
        # pool holds some) waits for the peer's close_notify, which an idle pool never sends.
        "timeout_graceful_shutdown": graceful_shutdown_s(vault.settings.vault_forward_timeout_s),
    }
    metrics = HttpMetrics()
    public = _Server(uvicorn.Config(create_public_app(vault, metrics), **common))
    internal = _Server(uvicorn.Config(create_internal_app(vault, metrics), **common, **ssl_options))

    def stop() -> None:
        public.should_exit = internal.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    sweeping = asyncio.create_task(_sweep_forever(vault)) if janitor else None
    freeze_startup_objects()
    try:
        await asyncio.gather(
            _serve_listener(public, sockets.public, "public"), _serve_listener(internal, sockets.internal, "internal")
        )
    finally:
        if sweeping is not None:
            sweeping.cancel()
        await vault.close()


def supervise(
    target: Callable[[VaultSockets, bool], None], sockets: VaultSockets, *, workers: int, forward_timeout_s: float
) -> int:
    """Run `target` in `workers` processes (the first one sweeps) until SIGINT or SIGTERM, or
    until one of them exits: then the others are stopped too and the exit status is 1, so that
    whatever runs the vault restarts all of it rather than serving on with fewer processes.

    Processes are spawned, not forked: each builds its own pools, keyring session and event loop."""
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=target, args=(sockets, index == 0), name=f"bastion-vault-{index}") for index in range(workers)
    ]
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive():
                process.terminate()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for process in processes:
        process.start()
    multiprocessing.connection.wait([process.sentinel for process in processes])
    asked_to_stop = stopping
    if not asked_to_stop:
        _log.error("vault_process_exited", exit_codes=[process.exitcode for process in processes])
        stop(signal.SIGTERM, None)
    # Each process gets its own graceful shutdown, and a second more to exit.
    deadline = time.monotonic() + graceful_shutdown_s(forward_timeout_s) + _SHUTDOWN_MARGIN_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    return 0 if asked_to_stop else 1
