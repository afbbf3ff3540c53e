"""`bastion worker`: the background duties, each a periodic task in one event loop."""

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bastion import bootstrap
from bastion.api.janitor import expire_idempotency_keys
from bastion.platform.db import Database, ServiceRoles
from bastion.platform.logging import get_logger
from bastion.platform.settings import Settings

_log = get_logger(__name__)
JANITOR_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class Duty:
    name: str
    run_once: Callable[[], Awaitable[object]]
    interval_s: float


async def _repeat(duty: Duty, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await duty.run_once()
        except Exception:  # noqa: BLE001  (a failed round is logged and retried next interval)
            _log.exception("worker_duty_failed", duty=duty.name)
        try:
            await asyncio.wait_for(stop.wait(), timeout=duty.interval_s)
        except TimeoutError:
            continue


def duties(settings: Settings, database: Database) -> list[Duty]:
    return [
        Duty("idempotency_janitor", lambda: expire_idempotency_keys(database, settings.idempotency_ttl_s), JANITOR_INTERVAL_S),
    ]


async def run_worker(settings: Settings, url: str) -> None:
    database = bootstrap.role_database(settings, url, ServiceRoles(settings.db_role_prefix).worker)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    _log.info("worker_started")
    try:
        await asyncio.gather(*(_repeat(duty, stop) for duty in duties(settings, database)))
    finally:
        await database.dispose()
        _log.info("worker_stopped")
