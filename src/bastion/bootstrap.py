"""The one place where concrete parts are wired together."""

import base64
import dataclasses
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

import bastion.acquirer.tables
import bastion.audit.tables
import bastion.connectors.tables
import bastion.customers.tables
import bastion.events.tables
import bastion.ledger.tables
import bastion.merchants.tables
import bastion.payments.tables
import bastion.platform.idempotency.tables
import bastion.risk.tables
import bastion.routing.tables
import bastion.vault.tables
import bastion.webhooks.tables  # noqa: F401  (every context registers its tables in the shared metadata)
from bastion import connectors, customers, events, ledger, payments, risk, routing, webhooks
from bastion.acquirer.notifications import NOTIFICATION_TIMEOUT_S
from bastion.acquirer.service import Acquirer
from bastion.api.app import create_app
from bastion.api.authentication import Authenticator
from bastion.api.context import Services
from bastion.api.demo.routes import load_credentials
from bastion.api.demo.shop import ensure_demo_shop
from bastion.audit.chain import CHAIN_KEY_PURPOSE, CHECKPOINT_KEY_PURPOSE
from bastion.kernel.clock import SYSTEM_CLOCK, Clock
from bastion.kernel.errors import ConfigurationError
from bastion.payments.adyen import ADYEN, AdyenConnector
from bastion.payments.braintree import BRAINTREE, BraintreeConnector
from bastion.payments.directory import Builder, ConnectorDirectory
from bastion.payments.disputes import close_phases, submit_phases
from bastion.payments.intents import cancel_phases, capture_phases, confirm_phases, sync_phases
from bastion.payments.outbound import ProcessorClients
from bastion.payments.refunds import refund_phases
from bastion.payments.review_decisions import review_phases
from bastion.payments.sandbox import SandboxConnector
from bastion.payments.service import payment_method_phases
from bastion.payments.stripe import STRIPE_CONNECTOR, StripeConnector
from bastion.platform.certs import CertPaths, client_ssl_context, init_certs, private_ca_client_context
from bastion.platform.crypto import DerivedKeys, KeyedHasher, LocalKeyring, signing_purpose
from bastion.platform.db import Database, RolePasswords, ServiceRoles, plain_dsn
from bastion.platform.embedded_pg import EmbeddedPostgres
from bastion.platform.grant import Grant
from bastion.platform.heap import freeze_startup_objects
from bastion.platform.http.ratelimit import RateLimiter
from bastion.platform.idempotency import PhasedCommands
from bastion.platform.logging import configure_logging
from bastion.platform.metrics import create_metrics_token, read_metrics_token
from bastion.platform.settings import SANDBOX_CONNECTOR, Settings
from bastion.platform.vault_client import VaultClient
from bastion.vault import events as vault_events
from bastion.vault.keyring import KeyEncryptionKeys, open_key_encryption_keys
from bastion.vault.rotation import ensure_key_version
from bastion.vault.service import PROCESSOR_CONNECTIONS_MAX, PROCESSOR_KEEP_ALIVE_S, Processors, Vault

API_KEY_HASH_PURPOSE = "api-key-hash"
# Every client of a processor (the vault's, the API's of the sandbox acquirer, the acquirer's of
# the API): bounded, and letting go of an idle connection (PROCESSOR_KEEP_ALIVE_S) well before
# the server closes it (uvicorn's 5 s), so that no request goes down a connection being closed
# at that moment ("Server disconnected": a refund answered 502 in CI).
_PROCESSOR_LIMITS = httpx.Limits(
    max_connections=PROCESSOR_CONNECTIONS_MAX,
    max_keepalive_connections=PROCESSOR_CONNECTIONS_MAX,
    keepalive_expiry=PROCESSOR_KEEP_ALIVE_S,
)
VAULT_MARGIN_S = 5.0

# Every event type each context declares, known to the outbox in every process that wires parts.
events.register_event_types(
    connectors.EVENT_TYPES
    | customers.EVENT_TYPES
    | ledger.EVENT_TYPES
    | payments.EVENT_TYPES
    | risk.EVENT_TYPES
    | routing.EVENT_TYPES
    | vault_events.EVENT_TYPES
    | webhooks.EVENT_TYPES,
)


def owner_url(settings: Settings) -> str:
    """The configured PostgreSQL, or the embedded one (started if it is not running)."""
    if settings.database_url is not None:
        return settings.database_url
    embedded = EmbeddedPostgres(settings.data_dir)
    embedded.start()
    return embedded.url()


@contextmanager
def owner_url_for_command(settings: Settings) -> Iterator[str]:
    """`owner_url` for a one-shot command: an embedded server it had to start is stopped after."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    was_running = embedded.is_running()
    embedded.start()
    try:
        yield embedded.url()
    finally:
        if not was_running:
            embedded.stop()


def _role_password(settings: Settings, role: str) -> str:
    passwords = RolePasswords(settings.data_dir).load()
    if role not in passwords:
        raise ConfigurationError(f"no credentials for database role {role}: run `bastion migrate` first")
    return passwords[role]


def role_dsn(settings: Settings, url: str, role: str, *, application_name: str | None = None) -> str:
    """The DSN of `role` on the server of `url`, with the password generated at migration."""
    return plain_dsn(url, role=role, password=_role_password(settings, role), application_name=application_name)


def role_database(settings: Settings, url: str, role: str, *, clock: Clock = SYSTEM_CLOCK) -> Database:
    return Database(role_dsn(settings, url, role), pool_size=settings.db_pool_size, clock=clock)


def owner_database(url: str, *, pool_size: int = 2, clock: Clock = SYSTEM_CLOCK) -> Database:
    """The owner role: migrations' peer for administrative commands (bypasses row-level security)."""
    return Database(plain_dsn(url, application_name="bastion-owner"), pool_size=pool_size, clock=clock)


def keyring(settings: Settings) -> LocalKeyring:
    return LocalKeyring.open(settings.data_dir, create=False)


def key_hasher(settings: Settings) -> KeyedHasher:
    return KeyedHasher(keyring(settings).secret(API_KEY_HASH_PURPOSE))


# Each process's grant (ADR 15): its role, and the keyring purposes it serves. The API and the
# vault both find API keys by their keyed hash; only the worker seals the audit chain; the API
# and the sandbox acquirer share the secret the API's connector presents to the acquirer.
ACQUIRER_API_KEY_PURPOSE = "sandbox-acquirer-api-key"
ACQUIRER_NOTIFICATIONS_PURPOSE = "sandbox-acquirer-notifications"
# Where the sandbox acquirer posts its notifications, under BASTION_ACQUIRER_NOTIFY_URL.
ACQUIRER_NOTIFICATIONS_PATH = "/v1/connectors/sandbox/notifications"
_ACQUIRER_PURPOSES = [ACQUIRER_API_KEY_PURPOSE, ACQUIRER_NOTIFICATIONS_PURPOSE]


def _grant(settings: Settings, url: str, process: str, role: str, purposes: list[str]) -> Grant:
    """`process`'s role and keys; what else it holds is added by its own grant below."""
    return Grant(
        database_dsn=role_dsn(settings, url, role, application_name=f"bastion-{process}"),
        keys=keyring(settings).derive(purposes),
    )


def api_grant(settings: Settings, url: str, *, demo: bool) -> Grant:
    return dataclasses.replace(
        _grant(
            settings,
            url,
            "api",
            ServiceRoles(settings.db_role_prefix).app,
            [API_KEY_HASH_PURPOSE, *_ACQUIRER_PURPOSES, webhooks.SECRETS_KEY_PURPOSE, connectors.CREDENTIALS_KEY_PURPOSE],
        ),
        metrics_token=read_metrics_token(settings.data_dir),
        demo_keys=load_credentials(settings.data_dir) if demo else None,
    )


def vault_grant(settings: Settings, url: str) -> Grant:
    return dataclasses.replace(
        _grant(settings, url, "vault", ServiceRoles(settings.db_role_prefix).vault, [API_KEY_HASH_PURPOSE]),
        pkcs11_pin=settings.pkcs11_pin if settings.vault_keyring == "pkcs11" else None,
    )


def acquirer_grant(settings: Settings, url: str) -> Grant:
    return _grant(settings, url, "acquirer", ServiceRoles(settings.db_role_prefix).acquirer, _ACQUIRER_PURPOSES)


def acquirer_api_key(grant: Grant) -> str:
    """The secret the sandbox connector presents to the acquirer, derived from the keyring."""
    return base64.urlsafe_b64encode(DerivedKeys(grant.keys).secret(ACQUIRER_API_KEY_PURPOSE)).decode().rstrip("=")


def acquirer_notification_secret(grant: Grant) -> bytes:
    """The secret the acquirer signs its notifications with, and the API verifies them with."""
    return DerivedKeys(grant.keys).secret(ACQUIRER_NOTIFICATIONS_PURPOSE)


def acquirer_runtime(settings: Settings, grant: Grant, *, pages_url: str, clock: Clock = SYSTEM_CLOCK) -> Acquirer:
    notify_url = settings.acquirer_notify_url
    return Acquirer(
        database=granted_database(settings, grant, clock=clock),
        api_key=acquirer_api_key(grant),
        pages_url=pages_url,
        notify_url=None if notify_url is None else notify_url + ACQUIRER_NOTIFICATIONS_PATH,
        notification_secret=acquirer_notification_secret(grant),
        # Bastion's API, on loopback: no proxy or CA from the environment, no redirects; idle
        # connections let go of before the API closes them.
        client=httpx.AsyncClient(
            timeout=httpx.Timeout(NOTIFICATION_TIMEOUT_S), limits=_PROCESSOR_LIMITS, follow_redirects=False, trust_env=False
        ),
        report_dir=settings.data_dir / "acquirer" / "settlements",
        dispute_review=timedelta(seconds=settings.acquirer_dispute_review_s),
        chaos=settings.acquirer_chaos,
    )


def worker_grant(settings: Settings, url: str) -> Grant:
    # The worker's sender signs deliveries with the endpoints' secrets.
    purposes = [CHAIN_KEY_PURPOSE, signing_purpose(CHECKPOINT_KEY_PURPOSE), webhooks.SECRETS_KEY_PURPOSE]
    return _grant(settings, url, "worker", ServiceRoles(settings.db_role_prefix).worker, purposes)


def _granted_hasher(grant: Grant) -> KeyedHasher:
    return KeyedHasher(DerivedKeys(grant.keys).secret(API_KEY_HASH_PURPOSE))


def granted_database(settings: Settings, grant: Grant, *, clock: Clock = SYSTEM_CLOCK) -> Database:
    return Database(grant.database_dsn, pool_size=settings.db_pool_size, clock=clock)


def api_services(settings: Settings, grant: Grant, *, clock: Clock = SYSTEM_CLOCK) -> Services:
    database = granted_database(settings, grant, clock=clock)
    vault = VaultClient(
        settings.vault_internal_url,
        client_ssl_context(CertPaths.under(settings.data_dir)),
        # A forward waits for the processor, and the vault's own limit comes first.
        timeout_s=settings.vault_forward_timeout_s + VAULT_MARGIN_S,
    )
    acquirer = httpx.AsyncClient(
        base_url=settings.acquirer_url,
        verify=private_ca_client_context(CertPaths.under(settings.data_dir)),
        timeout=httpx.Timeout(settings.acquirer_timeout_s),
        # Like the vault's clients of processors: idle connections let go of before the server
        # closes them, no redirects, no proxy or CA from the environment.
        limits=_PROCESSOR_LIMITS,
        follow_redirects=False,
        trust_env=False,
    )
    sandbox = SandboxConnector(vault, acquirer, acquirer_api_key(grant), acquirer_notification_secret(grant))
    credentials = connectors.CredentialsSealer(DerivedKeys(grant.keys).secret(connectors.CREDENTIALS_KEY_PURPOSE))
    # A merchant's sandbox accounts all reach the platform's one acquirer, with no credentials.
    # Built per account and dropped from the directory's memory unclosed: they share the clients.
    processor_clients = ProcessorClients()
    builders: dict[str, Builder] = {
        SANDBOX_CONNECTOR: lambda _account: sandbox,
        STRIPE_CONNECTOR: lambda account: StripeConnector(account, vault, processor_clients),
        BRAINTREE: lambda account: BraintreeConnector(account, vault, processor_clients),
        ADYEN: lambda account: AdyenConnector(account, vault),
    }
    directory = ConnectorDirectory(database, credentials, sandbox, builders)
    velocity = _velocity(settings)
    shelf = risk.ModelShelf(database, settings.risk_models_dir, refresh_s=settings.risk_model_refresh_s)
    # Every command in phases, by name: what the janitor may resume.
    phased = [
        payment_method_phases(vault),
        confirm_phases(database, directory, _assessor(settings, database, velocity, shelf), velocity),
        capture_phases(directory),
        cancel_phases(directory),
        refund_phases(directory),
        sync_phases(directory, velocity),
        submit_phases(directory),
        close_phases(directory),
        *review_phases(directory),
    ]
    return Services(
        settings=settings,
        database=database,
        authenticator=Authenticator(database, _granted_hasher(grant), settings.auth_cache_ttl_s),
        rate_limiter=RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
        vault=vault,
        commands=PhasedCommands(
            database, {phases.name: phases for phases in phased}, hold_timeout_s=settings.idempotency_hold_timeout_s
        ),
        metrics_token=_metrics_token(grant),
        connectors=directory,
        velocity=velocity,
        webhook_secrets=webhooks.EndpointSecrets(DerivedKeys(grant.keys).secret(webhooks.SECRETS_KEY_PURPOSE)),
        connector_credentials=credentials,
        demo_keys=grant.demo_keys,
        outbound=(acquirer, *processor_clients.clients.values()),
        model_metrics=shelf.collectors(),
    )


def _velocity(settings: Settings) -> risk.Velocity:
    if settings.risk_velocity_redis_url is None:
        return risk.PostgresVelocity()
    return risk.RedisVelocity(settings.risk_velocity_redis_url)


def _assessor(settings: Settings, database: Database, velocity: risk.Velocity, shelf: risk.ModelShelf) -> risk.Assessor | None:
    if not settings.risk_engine:
        return None
    return risk.Assessor(
        database,
        budget_ms=settings.risk_budget_ms,
        locator=risk.Locator(settings.geoip_database),
        travel_limits=risk.TravelLimits(speed_kmh=settings.risk_travel_kmh, distance_km=settings.risk_travel_min_km),
        velocity=velocity,
        shelf=shelf,
    )


def _metrics_token(grant: Grant) -> bytes:
    if grant.metrics_token is None:
        raise ConfigurationError("this process was not granted the metrics token: it is not the API")
    return grant.metrics_token


def create_api() -> FastAPI:
    """Uvicorn factory for `bastion api` on its own: its grant comes from the data directory."""
    settings = Settings.from_env()
    return api_app(settings, api_grant(settings, owner_url(settings), demo=settings.demo))


def api_app(settings: Settings, grant: Grant) -> FastAPI:
    configure_logging(settings.log_level, log_file=settings.log_file("api"))
    app = create_app(api_services(settings, grant))
    freeze_startup_objects()
    return app


def keyring_create(settings: Settings) -> None:
    """Create the local keyring at install time if it does not exist yet."""
    LocalKeyring.open(settings.data_dir, create=True)


def metrics_token_create(settings: Settings) -> None:
    create_metrics_token(settings.data_dir)


def certs_create(settings: Settings) -> bool:
    """The mutual-TLS certificates of the API and the vault; True when they were made now."""
    return init_certs(settings.data_dir)[1]


def vault_keys_directory(data_dir: Path) -> Path:
    """Where the local keyring keeps the vault's key-encryption keys: apart from the platform keyring."""
    return data_dir / "vault" / "keys"


def vault_keys(settings: Settings, *, pkcs11_pin: str | None) -> KeyEncryptionKeys:
    """The vault's key-encryption keys: its own, never the platform keyring's."""
    return open_key_encryption_keys(
        settings.vault_keyring,
        local_directory=vault_keys_directory(settings.data_dir),
        pkcs11_module=settings.pkcs11_module,
        pkcs11_token_label=settings.pkcs11_token_label,
        pkcs11_pin=pkcs11_pin,
    )


async def vault_keys_create(settings: Settings, url: str) -> int:
    """The vault's first key version, at install; the active version afterwards."""
    keys = vault_keys(settings, pkcs11_pin=settings.pkcs11_pin)
    database = owner_database(url)
    try:
        return await ensure_key_version(database, keys)
    finally:
        keys.close()
        await database.dispose()


def vault_runtime(settings: Settings, grant: Grant, *, clock: Clock = SYSTEM_CLOCK) -> Vault:
    return Vault(
        settings=settings,
        database=granted_database(settings, grant, clock=clock),
        keys=vault_keys(settings, pkcs11_pin=grant.pkcs11_pin),
        hasher=_granted_hasher(grant),
        processors=Processors(
            shared=_processor_client(settings, ssl.create_default_context()),
            pinned={
                name: _processor_client(settings, ssl.create_default_context(cafile=ca))
                for name, ca in settings.vault_connector_cas.items()
            },
        ),
    )


def _processor_client(settings: Settings, verify: ssl.SSLContext) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=verify,
        timeout=httpx.Timeout(settings.vault_forward_timeout_s),
        limits=_PROCESSOR_LIMITS,
        # Processors are reached only through the allowlist, never by redirects, and neither
        # HTTPS_PROXY nor SSL_CERT_FILE in the environment may reroute card data or change whom
        # it trusts.
        follow_redirects=False,
        trust_env=False,
    )


async def demo_shop_create(settings: Settings, url: str, api_origin: str) -> str:
    """The demo shop's merchant and test keys (made once), with `api_origin` allowed to frame the fields."""
    database = owner_database(url)
    try:
        return await ensure_demo_shop(database, key_hasher(settings), settings.data_dir, api_origin)
    finally:
        await database.dispose()
