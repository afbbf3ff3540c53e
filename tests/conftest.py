import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bastion import bootstrap
from bastion.platform.db import Database
from bastion.platform.settings import Settings
from tests.support.platform import Credentials, Platform
from tests.support.postgres import (
    ApiProcess,
    TestDatabase,
    migrated_database,
    running_acquirer,
    running_api_process,
    running_vault,
    server_url,
)
from tests.support.redis import running_redis
from tests.support.softhsm import SoftHsmToken, prepare_token

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


@pytest.fixture
def private_database(pg_server: tuple[str, Path | None]) -> Iterator[TestDatabase]:
    """A migrated database of the test's own, for what the session's shared one cannot show
    (a backlog that is all there is, a scan that must find nothing)."""
    with migrated_database(*pg_server) as database:
        yield database


@pytest.fixture(scope="session")
def settings(test_database: TestDatabase) -> Settings:
    os.environ.update({name: value for name, value in test_database.env().items() if name.startswith("BASTION_")})
    return Settings.from_env()


@pytest.fixture(scope="session")
async def platform(test_database: TestDatabase, settings: Settings, vault: ApiProcess) -> AsyncIterator[Platform]:
    """The in-process API. It starts after the session's vault so that it stops first: its
    client holds idle TLS connections to the vault, which would slow the vault's stop."""
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


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> SoftHsmToken:
    """The session's SoftHSM2 token (CI's, when it prepared one)."""
    return prepare_token(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the session's own Redis (with its password)."""
    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def api_process(test_database: TestDatabase, vault: ApiProcess) -> Iterator[ApiProcess]:
    """A real `bastion api` process on the session's database, for what only a served app shows."""
    with running_api_process(test_database) as process:
        yield process


@pytest.fixture(scope="session")
def vault(test_database: TestDatabase, settings: Settings) -> Iterator[ApiProcess]:
    """The session's `bastion vault` process (browser origin + mutual-TLS listener)."""
    with running_vault(test_database) as process:
        yield process


@pytest.fixture(scope="session")
def acquirer(test_database: TestDatabase, settings: Settings) -> Iterator[ApiProcess]:
    """The session's `bastion acquirer` process (the sandbox acquirer, HTTPS on loopback)."""
    with running_acquirer(test_database) as process:
        yield process
