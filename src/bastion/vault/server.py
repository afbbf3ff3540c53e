"""`bastion vault`: the two listeners of the vault in one process, and its janitor.

The public listener is the browser origin of the card fields; the internal one accepts
only clients presenting a certificate of the install's private CA (the API)."""

import asyncio
import contextlib
import math
import signal
from collections.abc import Iterator
from typing import Any

import uvicorn

from bastion.platform.heap import freeze_startup_objects
from bastion.platform.logging import get_logger
from bastion.platform.metrics import HttpMetrics
from bastion.platform.vault_client import VAULT_KEEP_ALIVE_S
from bastion.vault.app import create_internal_app, create_public_app
from bastion.vault.service import Vault, sweep

# Expired CVCs must be gone within the hour they are allowed (PCI DSS 3.3.1); a sweep
# every minute keeps them well inside it.
SWEEP_INTERVAL_S = 60.0
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


async def serve_vault(
    vault: Vault, *, public_host: str, public_port: int, internal_host: str, internal_port: int, ssl_options: dict[str, Any]
) -> None:
    common: dict[str, Any] = {
        "log_config": None,
        "access_log": False,
        "lifespan": "off",
        "server_header": False,
        "timeout_keep_alive": VAULT_KEEP_ALIVE_S,
        # On SIGTERM a request in flight gets as long as a forward may take, and then the
        # listeners close regardless: closing an idle TLS keep-alive connection (the API's
        # pool holds some) waits for the peer's close_notify, which an idle pool never sends.
        "timeout_graceful_shutdown": math.ceil(vault.settings.vault_forward_timeout_s) + _SHUTDOWN_MARGIN_S,
    }
    metrics = HttpMetrics()
    public = _Server(uvicorn.Config(create_public_app(vault, metrics), host=public_host, port=public_port, **common))
    internal = _Server(
        uvicorn.Config(create_internal_app(vault, metrics), host=internal_host, port=internal_port, **common, **ssl_options)
    )

    def stop() -> None:
        public.should_exit = internal.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    janitor = asyncio.create_task(_sweep_forever(vault))
    freeze_startup_objects()
    try:
        await asyncio.gather(public.serve(), internal.serve())
    finally:
        janitor.cancel()
        await vault.close()
