"""The real `bastion` CLI as subprocesses against the test database: help for every command,
merchants and API keys whose secrets are shown once and stored only as keyed hashes, and
expected failures that end as one `error:` line instead of a traceback."""

import json
from typing import Any

import pytest
import typer
from typer.core import TyperGroup

from bastion.cli.main import app
from bastion.kernel.ids import new_id
from tests.support import postgres
from tests.support.cli import run_bastion
from tests.support.platform import Credentials, Platform

pytestmark = pytest.mark.processes

_TABLES = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"


def _command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the Typer app, as the words that name it."""
    paths: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        paths.append(path)
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda path: " ".join(path) or "bastion")
async def test_help_for_every_command(path: tuple[str, ...]) -> None:
    ran = await run_bastion(*path, "--help")
    assert ran.returncode == 0, ran.stderr
    assert f"Usage: {' '.join(('bastion', *path))}" in ran.stdout


async def _created_key(test_database: postgres.TestDatabase, merchant_id: str, *options: str) -> dict[str, Any]:
    ran = await run_bastion("apikey", "create", "--merchant", merchant_id, *options, "--json", env=test_database.env())
    assert ran.returncode == 0, ran.stderr
    created: dict[str, Any] = json.loads(ran.stdout)
    return created


async def _rows_containing(platform: Platform, needle: str) -> list[str]:
    """Names of the tables with a row whose text contains `needle` (the owner bypasses row-level security)."""
    found: list[str] = []
    async with platform.owner.transaction() as connection:
        tables = [row["table_name"] for row in await connection.fetch(_TABLES)]
        for table in tables:
            # A table name from the catalogue, quoted; the needle is a bind parameter.
            statement = f'SELECT 1 FROM "{table}" AS t WHERE strpos(t::text, $1) > 0 LIMIT 1'
            if await connection.fetchrow(statement, needle) is not None:
                found.append(table)
    return found


async def test_merchant_and_key_creation(test_database: postgres.TestDatabase, platform: Platform) -> None:
    ran = await run_bastion("merchant", "create", "--name", "CLI Shop", "--json", env=test_database.env())
    assert ran.returncode == 0, ran.stderr
    merchant = json.loads(ran.stdout)
    assert merchant["id"].startswith("mer_")
    assert merchant["object"] == "merchant"
    assert merchant["name"] == "CLI Shop"

    key = await _created_key(test_database, merchant["id"], "--mode", "test")
    assert key["id"].startswith("key_")
    assert key["merchant"] == merchant["id"]
    assert key["livemode"] is False
    assert key["secret"].startswith("sk_test_")
    assert key["publishable"].startswith("pk_test_")

    async with platform.owner.transaction() as connection:
        stored = await connection.fetchrow("SELECT secret_hash, publishable_hash FROM api_keys WHERE id = $1", key["id"])
    assert stored is not None
    hasher = platform.services.authenticator.hasher
    assert stored["secret_hash"] == hasher.digest(key["secret"])
    assert stored["publishable_hash"] == hasher.digest(key["publishable"])
    for shown in (key["secret"], key["publishable"]):
        # The hint keeps a few leading and trailing characters; the middle must be nowhere.
        assert await _rows_containing(platform, shown[8:-4]) == [], "a key secret is stored in clear"

    credentials = Credentials(merchant["id"], key["id"], key["secret"], key["publishable"])
    async with platform.client(credentials) as client:
        created = await client.post("/v1/customers", json={"name": "from a CLI key"})
    assert created.status_code == 200, created.text
    assert created.json()["livemode"] is False


async def test_live_mode_and_restricted_scopes(test_database: postgres.TestDatabase, platform: Platform) -> None:
    merchant = await platform.merchant()
    live = await _created_key(test_database, merchant.merchant_id, "--mode", "live")
    assert live["secret"].startswith("sk_live_")
    assert live["publishable"].startswith("pk_live_")
    assert live["livemode"] is True

    reader = await _created_key(test_database, merchant.merchant_id, "--scope", "customers:read", "--scope", "events:read")
    assert reader["scopes"] == ["customers:read", "events:read"]
    credentials = Credentials(merchant.merchant_id, reader["id"], reader["secret"], reader["publishable"])
    async with platform.client(credentials) as client:
        assert (await client.get("/v1/customers")).status_code == 200
        denied = await client.post("/v1/customers", json={})
    assert denied.status_code == 403
    assert denied.json()["error"]["type"] == "permission_error"


@pytest.mark.parametrize(
    ("args", "env_overrides", "expected"),
    [
        (("apikey", "create", "--merchant", new_id("mer")), {}, "No such merchant"),
        (("apikey", "create", "--merchant", "{merchant}", "--mode", "prod"), {}, "--mode must be test or live"),
        (("apikey", "create", "--merchant", "{merchant}", "--scope", "customers:delete"), {}, "unknown scope"),
        (("merchant", "create", "--name", ""), {}, "name must be"),
        (("merchant", "create", "--name", "   "), {}, "name must be"),
        (("merchant", "create", "--name", "X"), {"BASTION_DATABASE_URL": "{closed}"}, "cannot reach the database"),
        (("migrate",), {"BASTION_DATABASE_URL": "{closed}"}, "cannot reach the database"),
        (("merchant", "create", "--name", "X"), {"BASTION_DB_POOL_SIZE": "many"}, "BASTION_DB_POOL_SIZE"),
        (("apikey", "create", "--merchant", "{merchant}"), {"BASTION_DB_POOL_SIZE": "0"}, "BASTION_DB_POOL_SIZE"),
    ],
    ids=[
        "unknown-merchant",
        "bad-mode",
        "unknown-scope",
        "empty-name",
        "blank-name",
        "unreachable-database",
        "unreachable-database-migrate",
        "pool-size-not-integer",
        "pool-size-out-of-range",
    ],
)
async def test_errors_are_one_line(
    test_database: postgres.TestDatabase,
    merchant: Credentials,
    args: tuple[str, ...],
    env_overrides: dict[str, str],
    expected: str,
) -> None:
    closed = f"postgresql://postgres@127.0.0.1:{postgres.free_port()}/bastion"
    filled = [arg.format(merchant=merchant.merchant_id) for arg in args]
    env = {**test_database.env(), **{name: value.format(closed=closed) for name, value in env_overrides.items()}}
    ran = await run_bastion(*filled, env=env)
    assert ran.returncode != 0
    lines = ran.stderr.splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert ran.stdout == ""
