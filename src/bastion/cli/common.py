"""What every command group shares: one `error:` line for expected failures, printing a
resource, the owner's database for one command, and the install steps."""

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg
import typer
from sqlalchemy.exc import SQLAlchemyError, StatementError
from typer.core import TyperGroup

from bastion import bootstrap
from bastion.kernel.errors import BastionError
from bastion.platform import migrate as migrations
from bastion.platform.db import Actor, Database, ServiceRoles
from bastion.platform.settings import Settings

T = TypeVar("T")
CLI_ACTOR = Actor(id=f"cli:{os.environ.get('USER', 'unknown')}")


def fail(message: str) -> typer.Exit:
    # One line whatever the source: third-party messages can carry DETAIL/HINT lines or a log tail.
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return typer.Exit(code=1)


def expected_failure(error: Exception) -> str | None:
    """What to tell the user about a failure they can fix (input, configuration, the database);
    None for a bug, which keeps its traceback."""
    if isinstance(error, BastionError):
        return error.message
    if isinstance(error, StatementError):
        # Not str(error): that carries the SQL and its parameters.
        return f"database error: {error.orig}"
    if isinstance(error, SQLAlchemyError | asyncpg.PostgresError | asyncpg.InterfaceError):
        return f"database error: {error}"
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return f"cannot reach the database: {error}"
    if isinstance(error, OSError):
        return str(error)
    return None


class Commands(TyperGroup):
    """Every command, nested groups included, runs inside this invoke: one place turns expected
    failures into one `error:` line on stderr and exit code 1."""

    # Any: typer vendors click privately, so the Context base type has no public name.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            message = expected_failure(error)
            if message is None:
                raise
            raise fail(message) from None


def print_resource(resource: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(resource))
    else:
        for key, value in resource.items():
            typer.echo(f"{key}: {value}")


async def _with_owner_database(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    database = bootstrap.owner_database(url)
    try:
        return await work(database)
    finally:
        await database.dispose()


def run_with_owner_database(work: Callable[[Database], Awaitable[T]], settings: Settings | None = None) -> T:
    """`work` against the owner's database, for one command: an embedded server it had to start is
    stopped after. `settings` where the command has read them already; else read here."""
    settings = settings if settings is not None else Settings.from_env()
    with bootstrap.owner_url_for_command(settings) as url:
        return asyncio.run(_with_owner_database(url, work))


def install(settings: Settings, url: str) -> None:
    """Everything an install needs, made once: keyring, metrics token, certificates, schema, the vault's first key."""
    bootstrap.keyring_create(settings)
    bootstrap.metrics_token_create(settings)
    bootstrap.certs_create(settings)
    asyncio.run(migrations.upgrade(url, settings.data_dir, ServiceRoles(settings.db_role_prefix)))
    asyncio.run(bootstrap.vault_keys_create(settings, url))
