import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bastion import bootstrap
from bastion.platform.db import Database
from bastion.platform.settings import Settings
from tests.support.platform import Credentials, Platform
from tests.support.postgres import TestDatabase, migrated_database, server_url

# A generous limit for tests that do not test rate limiting themselves.
os.environ.setdefault("BASTION_RATE_LIMIT_PER_S", "100000")
os.environ.setdefault("BASTION_RATE_LIMIT_BURST", "100000")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[tuple[str, Path | None]]:
    with server_url(os.environ.get("BASTION_TEST_DATABASE_URL")) as server:
        yield server


@pytest.fixture(scope="session")
def test_database(pg_server: tuple[str, Path | None]) -> Iterator[TestDatabase]:
    """The session's migrated database."""
    with migrated_database(*pg_server) as database:
        yield database


@pytest.fixture(scope="session")
def settings(test_database: TestDatabase) -> Settings:
    os.environ.update(
        {
            "BASTION_DATABASE_URL": test_database.owner_url,
            "BASTION_DATA_DIR": str(test_database.data_dir),
            "BASTION_DB_ROLE_PREFIX": test_database.role_prefix,
        }
    )
    return Settings.from_env()


@pytest.fixture(scope="session")
async def platform(test_database: TestDatabase, settings: Settings) -> AsyncIterator[Platform]:
    built = Platform(test_database, settings)
    yield built
    await built.close()


@pytest.fixture
async def merchant(platform: Platform) -> Credentials:
    """A fresh merchant with an all-scopes test key: tests never see each other's data."""
    return await platform.merchant()


@pytest.fixture(scope="session")
async def worker_database(settings: Settings, test_database: TestDatabase) -> AsyncIterator[Database]:
    """The worker's role on the session's database (the relay, the sealer, the ledger's expiry job)."""
    database = bootstrap.role_database(settings, test_database.owner_url, test_database.roles.worker)
    yield database
    await database.dispose()
