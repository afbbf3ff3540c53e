"""`bastion worker`: the outbox relay, the webhook sender and the background duties (each a
periodic task), in one event loop."""

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from bastion import bootstrap, risk, routing
from bastion.audit import CheckpointLog, FileCheckpointLog, anchor_latest, seal_backlog
from bastion.events import bus_publishers, load_subscribers, run_relay
from bastion.kernel.errors import ConfigurationError
from bastion.ledger import expire_due_holds
from bastion.platform.crypto import DerivedKeys, Keyring
from bastion.platform.db import Database
from bastion.platform.grant import Grant
from bastion.platform.idempotency.janitor import expire_idempotency_keys
from bastion.platform.logging import get_logger
from bastion.platform.settings import Settings
from bastion.webhooks import SECRETS_KEY_PURPOSE, EndpointSecrets
from bastion.webhooks.fanout import WebhookFanout
from bastion.webhooks.sender import SenderLimits, WebhookSender

_log = get_logger(__name__)
JANITOR_INTERVAL_S = 60.0
RISK_DRIFT_INTERVAL_S = 3_600.0  # yesterday's drift, computed again each hour
WORKER_POOL_SIZE_MIN = 3
AUDIT_SEALER_INTERVAL_S = 1.0
HOLD_EXPIRY_INTERVAL_S = 1.0


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


async def _seal_and_anchor(database: Database, keyring: Keyring, anchor: CheckpointLog) -> int:
    """Seal what is queued, then copy the newest checkpoint out of the database: after the
    seal's commit, and again each round until the log has it (docs/audit.md)."""
    sealed = await seal_backlog(database, keyring)
    await anchor_latest(database, anchor)
    return sealed


async def _yesterdays_drift(database: Database) -> dict[str, float]:
    """The champion's drift over yesterday (UTC), again each round: the day's late decisions count too."""
    now = database.clock.now()
    return await risk.compute_drift(database, (now - timedelta(days=1)).date(), now)


def duties(settings: Settings, database: Database, keyring: Keyring) -> list[Duty]:
    anchor = FileCheckpointLog(settings.audit_checkpoint_log)
    return [
        Duty("audit_sealer", lambda: _seal_and_anchor(database, keyring, anchor), AUDIT_SEALER_INTERVAL_S),
        Duty("hold_expiry", lambda: expire_due_holds(database), HOLD_EXPIRY_INTERVAL_S),
        Duty("idempotency_janitor", lambda: expire_idempotency_keys(database, settings.idempotency_ttl_s), JANITOR_INTERVAL_S),
        Duty("routing_outcomes_pruner", lambda: routing.prune_outcomes(database), JANITOR_INTERVAL_S),
        Duty("risk_model_drift", lambda: _yesterdays_drift(database), RISK_DRIFT_INTERVAL_S),
    ]


async def run_worker(settings: Settings, grant: Grant) -> None:
    if settings.db_pool_size < WORKER_POOL_SIZE_MIN:
        raise ConfigurationError(
            f"the worker needs BASTION_DB_POOL_SIZE of at least {WORKER_POOL_SIZE_MIN}: "
            "the relay holds a batch open while each delivery runs in its own transaction"
        )
    database = bootstrap.granted_database(settings, grant)
    # Webhooks' fan-out is built in: every deployment delivers to the endpoints merchants register.
    # The bus publishers are subscribers like any other: each event reaches the broker at least once.
    publishers = bus_publishers(settings)
    subscribers = [WebhookFanout(database.clock), *load_subscribers(settings.subscribers), *publishers]
    keys = DerivedKeys(grant.keys)
    sender = WebhookSender(
        database,
        EndpointSecrets(keys.secret(SECRETS_KEY_PURPOSE)),
        limits=SenderLimits(
            in_flight_max=settings.webhook_in_flight_max,
            per_endpoint_max=settings.webhook_per_endpoint_max,
            jitter_fraction=settings.webhook_jitter_percent / 100,
        ),
        proxy_url=settings.webhook_proxy_url,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    _log.info("worker_started")
    try:
        await asyncio.gather(
            run_relay(database, grant.database_dsn, subscribers, stop),
            sender.run(grant.database_dsn, stop),
            *(_repeat(duty, stop) for duty in duties(settings, database, keys)),
        )
    finally:
        for publisher in publishers:
            await publisher.close()
        await database.dispose()
        _log.info("worker_stopped")
