"""Database access: role-aware engines and the unit of work.

The framework owns the transaction: `Database.unit_of_work()` opens one, sets the
tenant for row-level security with `set_config(..., is_local => true)`, and commits
only when the block ends without an exception. Services receive the `UnitOfWork` and
never commit.
"""

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import orjson
from sqlalchemy import text
from sqlalchemy.engine import URL, Row, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bastion.kernel.errors import ConfigurationError

# A result row of any shape, as repositories return them.
AnyRow: TypeAlias = Row[*tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Tenant:
    merchant_id: str
    livemode: bool


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a change, and from where: recorded in every audit row."""

    id: str
    ip_address: str | None = None
    device_id: str | None = None
    request_id: str | None = None


@dataclass(slots=True)
class UnitOfWork:
    connection: AsyncConnection
    tenant: Tenant
    actor: Actor
    # Whether the transaction-scoped advisory lock asked of `unit_of_work` was granted.
    holds_lock: bool = False


@dataclass(frozen=True, slots=True)
class ServiceRoles:
    """Least-privilege roles: the API runs as `app` (row-level security applies),
    the worker as `worker` (policies let it read across tenants, nothing more)."""

    prefix: str

    @property
    def app(self) -> str:
        return f"{self.prefix}_app"

    @property
    def worker(self) -> str:
        return f"{self.prefix}_worker"

    @property
    def all(self) -> tuple[str, str]:
        return (self.app, self.worker)


class RolePasswords:
    """Passwords of the service roles, generated at first migration, kept 0600 in the data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "secrets" / "db_roles.json"

    def load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        loaded: dict[str, str] = json.loads(self.path.read_text())
        return loaded

    def ensure(self, roles: ServiceRoles) -> dict[str, str]:
        passwords = self.load()
        changed = False
        for role in roles.all:
            if role not in passwords:
                passwords[role] = secrets.token_urlsafe(32)
                changed = True
        if changed:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.touch(mode=0o600)
            temporary.write_text(json.dumps(passwords))
            temporary.replace(self.path)
        return passwords


def asyncpg_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError("BASTION_DATABASE_URL is not a valid URL: expected postgresql://user@host/db") from None
    if parsed.get_backend_name() != "postgresql":
        raise ConfigurationError("BASTION_DATABASE_URL must be a postgresql:// URL")
    return parsed.set(drivername="postgresql+asyncpg")


def role_url(owner_url: str, role: str, password: str) -> URL:
    return asyncpg_url(owner_url).set(username=role, password=password)


def _json_text(value: Any) -> str:
    # JSONB parameters: orjson is several times faster than the standard library here.
    return orjson.dumps(value).decode()


def create_engine(url: URL, *, pool_size: int) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=10,
        pool_recycle=3600,
        # Errors must not carry request values (card numbers, emails) into logs.
        hide_parameters=True,
        json_serializer=_json_text,
        json_deserializer=orjson.loads,
        connect_args={"server_settings": {"application_name": "bastion"}, "timeout": 10},
    )


_SET_TENANT = text(
    "SELECT set_config('bastion.merchant_id', :merchant_id, true), set_config('bastion.livemode', :livemode, true)"
)
_SET_TENANT_AND_TRY_LOCK = text(
    "SELECT pg_try_advisory_xact_lock(:lock_id), "
    "set_config('bastion.merchant_id', :merchant_id, true), set_config('bastion.livemode', :livemode, true)"
)


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction without tenant: for platform work (worker, auth lookups)."""
        async with self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def unit_of_work(self, tenant: Tenant, actor: Actor, *, try_lock_id: int | None = None) -> AsyncIterator[UnitOfWork]:
        """One transaction for `tenant`. With `try_lock_id`, also try (without waiting) for
        that transaction-scoped advisory lock in the same round trip; see `holds_lock`."""
        params = {"merchant_id": tenant.merchant_id, "livemode": "true" if tenant.livemode else "false"}
        async with self.engine.begin() as connection:
            if try_lock_id is None:
                await connection.execute(_SET_TENANT, params)
                yield UnitOfWork(connection=connection, tenant=tenant, actor=actor)
                return
            locked = (await connection.execute(_SET_TENANT_AND_TRY_LOCK, {**params, "lock_id": try_lock_id})).scalar_one()
            yield UnitOfWork(connection=connection, tenant=tenant, actor=actor, holds_lock=bool(locked))

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
