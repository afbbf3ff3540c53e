"""The one place where concrete parts are wired together."""

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

import bastion.api.tables
import bastion.audit.tables
import bastion.events.tables
import bastion.ledger.tables
import bastion.merchants.tables
import bastion.payments.tables  # noqa: F401  (every context registers its tables in the shared metadata)
from bastion.api.app import create_app
from bastion.api.authentication import Authenticator
from bastion.api.context import Services
from bastion.api.ratelimit import RateLimiter
from bastion.kernel.errors import ConfigurationError
from bastion.platform.crypto import KeyedHasher, LocalKeyring
from bastion.platform.db import Database, RolePasswords, ServiceRoles, plain_dsn
from bastion.platform.embedded_pg import EmbeddedPostgres
from bastion.platform.logging import configure_logging
from bastion.platform.settings import Settings

API_KEY_HASH_PURPOSE = "api-key-hash"


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


def role_dsn(settings: Settings, url: str, role: str) -> str:
    """The DSN of `role` on the server of `url`, with the password generated at migration."""
    return plain_dsn(url, role=role, password=_role_password(settings, role))


def role_database(settings: Settings, url: str, role: str) -> Database:
    return Database(role_dsn(settings, url, role), pool_size=settings.db_pool_size)


def owner_database(url: str, *, pool_size: int = 2) -> Database:
    """The owner role: migrations' peer for administrative commands (bypasses row-level security)."""
    return Database(plain_dsn(url), pool_size=pool_size)


def keyring(settings: Settings) -> LocalKeyring:
    return LocalKeyring.open(settings.data_dir, create=False)


def key_hasher(settings: Settings) -> KeyedHasher:
    return KeyedHasher(keyring(settings).secret(API_KEY_HASH_PURPOSE))


def api_services(settings: Settings, url: str) -> Services:
    database = role_database(settings, url, ServiceRoles(settings.db_role_prefix).app)
    return Services(
        settings=settings,
        database=database,
        authenticator=Authenticator(database, key_hasher(settings), settings.auth_cache_ttl_s),
        rate_limiter=RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
    )


def create_api() -> FastAPI:
    """Uvicorn factory for `bastion api`: everything comes from the environment."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return create_app(api_services(settings, owner_url(settings)))


def keyring_create(settings: Settings) -> None:
    """Create the local keyring at install time if it does not exist yet."""
    LocalKeyring.open(settings.data_dir, create=True)
