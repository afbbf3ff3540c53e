"""Database access: role-aware connection pools and the unit of work.

Repositories run SQL on asyncpg directly (ADR 7): prepared statements, records, no ORM
or expression layer on the request path. SQLAlchemy stays for the table metadata that
Alembic migrations are checked against.

The framework owns the transaction: `Database.unit_of_work()` opens one, sets the
tenant for row-level security with `set_config(..., is_local => true)`, and commits
only when the block ends without an exception, after writing the rows its contexts queued
with `write_at_commit` (audit rows, events). Services receive the `UnitOfWork` and never
commit.
"""

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import orjson
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bastion.kernel.clock import SYSTEM_CLOCK, Clock
from bastion.kernel.errors import ConfigurationError
from bastion.platform.secret_files import read_secret, write_secret

# A result row, as repositories return them: read columns with row["name"].
AnyRow: TypeAlias = asyncpg.Record
Connection: TypeAlias = asyncpg.Connection
# Writes every row queued for it in a unit of work, in one statement (`UnitOfWork.write_at_commit`).
RowsWriter: TypeAlias = Callable[[Connection, Sequence[dict[str, Any]]], Awaitable[None]]


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
    connection: Connection
    tenant: Tenant
    actor: Actor
    clock: Clock
    # Whether the transaction-scoped advisory lock asked of `unit_of_work` was granted.
    holds_lock: bool = False
    # Transaction-local settings a context has made (`set_config(..., true)`), so that it makes each once.
    local_settings: set[str] = field(default_factory=set)
    _at_commit: dict[RowsWriter, list[dict[str, Any]]] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.clock.now()

    def write_at_commit(self, writer: RowsWriter, row: dict[str, Any]) -> None:
        """Queue `row` for `writer`, which writes the rows queued for it, in their order, in one
        statement just before the transaction commits: a payment's audit rows and events are
        five or six per command, and a round trip each cost more than writing them."""
        self._at_commit.setdefault(writer, []).append(row)

    async def flush(self) -> None:
        """Write what `write_at_commit` queued; the unit of work does before it commits."""
        while self._at_commit:
            writer = next(iter(self._at_commit))
            await writer(self.connection, self._at_commit.pop(writer))


@dataclass(frozen=True, slots=True)
class ServiceRoles:
    """Least-privilege roles: the API runs as `app` (row-level security applies),
    the worker as `worker` (policies let it read across tenants, nothing more), the
    vault as `vault` (the only role with any grant on the `vault` schema)."""

    prefix: str

    @property
    def app(self) -> str:
        return f"{self.prefix}_app"

    @property
    def worker(self) -> str:
        return f"{self.prefix}_worker"

    @property
    def vault(self) -> str:
        return f"{self.prefix}_vault"

    @property
    def acquirer(self) -> str:
        return f"{self.prefix}_acquirer"

    @property
    def all(self) -> tuple[str, ...]:
        return (self.app, self.worker, self.vault, self.acquirer)


class RolePasswords:
    """Passwords of the service roles, generated at first migration, kept 0600 in the data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "secrets" / "db_roles.json"

    def load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        loaded: dict[str, str] = json.loads(read_secret(self.path))
        return loaded

    def ensure(self, roles: ServiceRoles) -> dict[str, str]:
        passwords = self.load()
        changed = False
        for role in roles.all:
            if role not in passwords:
                passwords[role] = secrets.token_urlsafe(32)
                changed = True
        if changed:
            write_secret(self.path, json.dumps(passwords).encode())
        return passwords


def asyncpg_url(url: str) -> URL:
    """`url` for SQLAlchemy's asyncpg dialect (Alembic migrations)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError("BASTION_DATABASE_URL is not a valid URL: expected postgresql://user@host/db") from None
    if parsed.get_backend_name() != "postgresql":
        raise ConfigurationError("BASTION_DATABASE_URL must be a postgresql:// URL")
    return parsed.set(drivername="postgresql+asyncpg")


def plain_dsn(url: str, *, role: str | None = None, password: str | None = None, application_name: str | None = None) -> str:
    """A libpq-style DSN for asyncpg, optionally as another role; an embedded server's
    socket directory stays in the `?host=` query, which asyncpg reads. So does the
    `application_name` that `pg_stat_activity` shows for the process (asyncpg sends the
    query's other parameters as session settings)."""
    parsed = asyncpg_url(url).set(drivername="postgresql")
    if role is not None:
        parsed = parsed.set(username=role, password=password)
    if application_name is not None:
        parsed = parsed.update_query_dict({"application_name": application_name})
    return parsed.render_as_string(hide_password=False)


POOL_ACQUIRE_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
STATEMENT_TIMEOUT_S = 30.0
CONNECTION_IDLE_LIFETIME_S = 300.0


async def _prepare_connection(connection: Connection) -> None:
    # JSON and JSONB columns in and out as Python values, through orjson.
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=lambda value: orjson.dumps(value).decode(), decoder=orjson.loads, schema="pg_catalog"
        )


async def _keep_session(_connection: Connection) -> None:
    """The pool's reset between borrowers: nothing to undo. Sessions carry no state of
    ours (the tenant settings and advisory locks are transaction-scoped, LISTEN has its
    own connection) and asyncpg ends any open transaction before calling this; the
    default reset would cost a round trip after every transaction."""


_SET_TENANT = "SELECT set_config('bastion.merchant_id', $1, true), set_config('bastion.livemode', $2, true)"
_SET_TENANT_AND_TRY_LOCK = (
    "SELECT pg_try_advisory_xact_lock($3), set_config('bastion.merchant_id', $1, true), set_config('bastion.livemode', $2, true)"
)


class Database:
    """A pool of connections as one role. The pool opens on first use, in the running event loop.
    `clock` is the time every unit of work and job on this database reads."""

    def __init__(self, dsn: str, *, pool_size: int, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _open(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=self._pool_size,
                        timeout=CONNECT_TIMEOUT_S,
                        command_timeout=STATEMENT_TIMEOUT_S,
                        max_inactive_connection_lifetime=CONNECTION_IDLE_LIFETIME_S,
                        init=_prepare_connection,
                        reset=_keep_session,
                        # Every query is a constant prepared statement over indexed equalities:
                        # one generic plan serves all parameters, and re-planning each call
                        # (PostgreSQL's default for array parameters) cost the ledger's
                        # writes about a third of their server time.
                        # The DSN names the application (`plain_dsn`).
                        server_settings={"plan_cache_mode": "force_generic_plan"},
                    )
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection outside any transaction (LISTEN, snapshots, DDL in tests)."""
        pool = await self._open()
        async with pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection:
            yield connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A transaction without tenant: for platform work (worker, auth look-ups, admin)."""
        async with self.connection() as connection, connection.transaction():
            yield connection

    @asynccontextmanager
    async def unit_of_work(self, tenant: Tenant, actor: Actor, *, try_lock_id: int | None = None) -> AsyncIterator[UnitOfWork]:
        """One transaction for `tenant`. With `try_lock_id`, also try (without waiting) for
        that transaction-scoped advisory lock in the same round trip; see `holds_lock`."""
        livemode = "true" if tenant.livemode else "false"
        async with self.transaction() as connection:
            if try_lock_id is None:
                await connection.execute(_SET_TENANT, tenant.merchant_id, livemode)
                locked = False
            else:
                locked = bool(await connection.fetchval(_SET_TENANT_AND_TRY_LOCK, tenant.merchant_id, livemode, try_lock_id))
            uow = UnitOfWork(connection=connection, tenant=tenant, actor=actor, clock=self.clock, holds_lock=locked)
            yield uow
            await uow.flush()

    async def ping(self) -> None:
        async with self.connection() as connection:
            await connection.fetchval("SELECT 1")

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
