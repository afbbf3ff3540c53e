"""Schema migrations: service roles, then Alembic to head, under an advisory lock so
that several processes starting at once migrate exactly once."""

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from bastion.platform.db import RolePasswords, ServiceRoles, asyncpg_url

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
_LOCK_KEY = 0x0BA5_710E  # arbitrary, constant: "bastion migrations"


def alembic_config(roles: ServiceRoles) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    config.attributes["roles"] = roles
    return config


def _ensure_roles(connection: Connection, roles: ServiceRoles, passwords: dict[str, str]) -> None:
    for role in roles.all:
        exists = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}).first()
        verb = "ALTER" if exists else "CREATE"
        # DDL cannot take bind parameters; format() quotes the name and password server-side.
        statement = connection.execute(
            text(
                f"SELECT format('{verb} ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD %L', "
                "CAST(:role AS text), CAST(:password AS text))"
            ),
            {"role": role, "password": passwords[role]},
        ).scalar_one()
        connection.exec_driver_sql(statement)
    database = connection.execute(text("SELECT current_database()")).scalar_one()
    for role in roles.all:
        connection.exec_driver_sql(
            connection.execute(
                text("SELECT format('GRANT CONNECT ON DATABASE %I TO %I', CAST(:db AS text), CAST(:role AS text))"),
                {"db": database, "role": role},
            ).scalar_one()
        )


def _upgrade(connection: Connection, roles: ServiceRoles, passwords: dict[str, str], revision: str) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
    try:
        _ensure_roles(connection, roles, passwords)
        connection.commit()
        config = alembic_config(roles)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
        connection.commit()


def _downgrade(connection: Connection, roles: ServiceRoles, revision: str) -> None:
    config = alembic_config(roles)
    config.attributes["connection"] = connection
    command.downgrade(config, revision)
    connection.commit()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(owner_url: str, data_dir: Path, roles: ServiceRoles, revision: str = "head") -> None:
    passwords = RolePasswords(data_dir).ensure(roles)
    engine = create_async_engine(asyncpg_url(owner_url))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_upgrade, roles, passwords, revision)
    finally:
        await engine.dispose()


async def downgrade(owner_url: str, roles: ServiceRoles, revision: str) -> None:
    engine = create_async_engine(asyncpg_url(owner_url))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_downgrade, roles, revision)
    finally:
        await engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config(ServiceRoles("unused"))).get_current_head()


def run_upgrade(owner_url: str, data_dir: Path, roles: ServiceRoles) -> None:
    asyncio.run(upgrade(owner_url, data_dir, roles))
