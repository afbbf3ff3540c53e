"""Migrations on a private database: up, down and up again, no drift between the tables the
code declares and the database, dated file names, and concurrent upgrades that migrate once."""

import asyncio
import re
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

import bastion.bootstrap  # noqa: F401  (registers every context's tables in the shared metadata)
from bastion.platform import migrate
from bastion.platform.crypto import LocalKeyring
from bastion.platform.db import ServiceRoles, asyncpg_url
from bastion.platform.schema import metadata
from tests.support import postgres

T = TypeVar("T")


@pytest.fixture
def private_database(pg_server: tuple[str, Path | None]) -> Iterator[postgres.TestDatabase]:
    """An empty database of its own: these tests migrate it up and down."""
    with postgres.fresh_database(*pg_server) as database:
        LocalKeyring.open(database.data_dir, create=True)
        yield database


async def _look(database: postgres.TestDatabase, look: Callable[[Connection], T]) -> T:
    engine = create_async_engine(asyncpg_url(database.owner_url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(look)
    finally:
        await engine.dispose()


def _public_tables(connection: Connection) -> set[str]:
    """Our tables as the metadata names them: `vault.cards` for the vault's, bare names in public."""
    statement = text(
        "SELECT CASE WHEN schemaname = 'public' THEN tablename ELSE schemaname || '.' || tablename END "
        "FROM pg_tables WHERE schemaname IN ('public', 'vault', 'acquirer')"
    )
    return set(connection.execute(statement).scalars())


def _our_schemas(name: str | None, type_: str, _parent: object) -> bool:
    return type_ != "schema" or name in (None, "vault", "acquirer")


def _public_functions(connection: Connection) -> set[str]:
    statement = text(
        "SELECT p.proname FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
    )
    return set(connection.execute(statement).scalars())


def _versions(connection: Connection) -> list[str]:
    return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _drift(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"include_schemas": True, "include_name": _our_schemas})
    differences: list[Any] = compare_metadata(context, metadata)
    return differences


async def test_upgrade_downgrade_upgrade_without_drift(private_database: postgres.TestDatabase) -> None:
    database = private_database
    ours = set(metadata.tables)
    assert {"merchants", "api_keys", "customers", "audit_events", "events"} <= ours, "bootstrap registers every table"
    head = migrate.head_revision()

    await migrate.upgrade(database.owner_url, database.data_dir, database.roles)
    assert await _look(database, _versions) == [head]
    assert ours <= await _look(database, _public_tables)
    assert await _look(database, _drift) == []

    await migrate.downgrade(database.owner_url, database.roles, "base")
    assert await _look(database, _public_tables) <= {"alembic_version"}, "no table of ours remains"
    assert await _look(database, _public_functions) == set()
    assert await _look(database, _versions) == []

    await migrate.upgrade(database.owner_url, database.data_dir, database.roles)
    assert await _look(database, _versions) == [head]
    assert await _look(database, _drift) == []


async def test_concurrent_upgrades_both_succeed_and_migrate_once(private_database: postgres.TestDatabase) -> None:
    database = private_database
    # Without the advisory lock one of them fails on a role or table the other just created.
    await asyncio.gather(
        migrate.upgrade(database.owner_url, database.data_dir, database.roles),
        migrate.upgrade(database.owner_url, database.data_dir, database.roles),
    )
    assert await _look(database, _versions) == [migrate.head_revision()]
    assert await _look(database, _drift) == []


def test_migration_files_are_dated_and_sort_in_revision_order() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config(ServiceRoles("unused")))
    base_to_head = list(reversed(list(script.walk_revisions())))
    names = [Path(revision.path).name for revision in base_to_head]
    assert names, "at least the foundation migration"
    for name in names:
        dated = re.fullmatch(r"(\d{4})_(\d{2})_(\d{2})_\w+\.py", name)
        assert dated, f"{name} is not named YYYY_MM_DD_<rev>_<slug>.py"
        date(int(dated[1]), int(dated[2]), int(dated[3]))  # raises on a date that does not exist
    assert names == sorted(names), "file names sort in the order the revisions apply"
    on_disk = sorted(path.name for path in (migrate.MIGRATIONS_DIR / "versions").glob("*.py"))
    assert on_disk == sorted(names), "every file in versions/ is a revision of the chain"
