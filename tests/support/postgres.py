"""The PostgreSQL the tests run on: BASTION_TEST_DATABASE_URL when set (CI points it at
the machine's server), otherwise an embedded server in a temporary directory. Each test
session gets its own database and its own service-role prefix, dropped at the end."""

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import asyncpg
from sqlalchemy.engine import make_url

from bastion import bootstrap
from bastion.platform import migrate
from bastion.platform.certs import init_certs
from bastion.platform.crypto import LocalKeyring
from bastion.platform.db import ServiceRoles, plain_dsn
from bastion.platform.embedded_pg import EmbeddedPostgres
from bastion.platform.metrics import create_metrics_token
from bastion.vault.keyring import KeyEncryptionKeys, LocalKeyEncryptionKeys
from bastion.vault.rotation import ensure_key_version


def accepts_connections(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class TestDatabase:
    __test__ = False  # a fixture value, not a test class

    owner_url: str
    role_prefix: str
    data_dir: Path
    bin_dir: Path | None
    # The session's vault listens here when a test starts it (`running_vault`).
    vault_port: int = field(default_factory=free_port)
    vault_internal_port: int = field(default_factory=free_port)
    # The session's sandbox acquirer (`running_acquirer`): its protocol and its cardholder pages.
    acquirer_port: int = field(default_factory=free_port)
    acquirer_pages_port: int = field(default_factory=free_port)
    # Where the session's acquirer sends its notifications: an API a test starts there gets
    # them; while none listens, they wait at the acquirer (`tests.support.acquirer`).
    api_port: int = field(default_factory=free_port)
    # The session's local servers of the processors' wire formats (`tests.support.providers`):
    # the vault forwards card data to them as it would to the processors themselves.
    stripe_port: int = field(default_factory=free_port)
    braintree_port: int = field(default_factory=free_port)
    adyen_port: int = field(default_factory=free_port)

    @property
    def vault_url(self) -> str:
        return f"http://127.0.0.1:{self.vault_port}"

    @property
    def roles(self) -> ServiceRoles:
        return ServiceRoles(self.role_prefix)

    def env(self) -> dict[str, str]:
        """The environment a Bastion process needs to run against this database."""
        return {
            **os.environ,
            "BASTION_DATABASE_URL": self.owner_url,
            "BASTION_DATA_DIR": str(self.data_dir),
            "BASTION_DB_ROLE_PREFIX": self.role_prefix,
            "BASTION_VAULT_PUBLIC_URL": self.vault_url,
            "BASTION_VAULT_INTERNAL_URL": f"https://127.0.0.1:{self.vault_internal_port}",
            "BASTION_ACQUIRER_URL": self.acquirer_url,
            "BASTION_ACQUIRER_NOTIFY_URL": f"http://127.0.0.1:{self.api_port}",
            # The sandbox issuer decides on dispute evidence after a second, not five.
            "BASTION_ACQUIRER_DISPUTE_REVIEW_S": "1",
            # Assessments decide rather than run out of 50 ms on a machine busy with the suite;
            # the budget's own tests set theirs.
            "BASTION_RISK_BUDGET_MS": "5000",
            # A model promoted by one test scores the next decision; none is cached past it.
            "BASTION_RISK_MODEL_REFRESH_S": "0",
            "BASTION_VAULT_CONNECTORS": ",".join(f"{name}={url}" for name, url in self.provider_urls.items()),
        }

    @property
    def provider_urls(self) -> dict[str, str]:
        """Where the session's local processor servers listen, by connector name."""
        ports = {"stripe": self.stripe_port, "braintree": self.braintree_port, "adyen": self.adyen_port}
        return {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}

    @property
    def acquirer_url(self) -> str:
        return f"https://127.0.0.1:{self.acquirer_port}"


async def _admin(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(plain_dsn(url))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def server_url(configured: str | None) -> Iterator[tuple[str, Path | None]]:
    """An admin URL of a server (`configured`, else an embedded one in a temporary
    directory), and the directory of its client binaries when embedded."""
    if configured:
        yield configured, None
        return
    root = Path(tempfile.mkdtemp(prefix="bastion-test-pg-"))
    embedded = EmbeddedPostgres(root)
    embedded.start()
    try:
        yield embedded.url("postgres"), embedded.bin_dir
    finally:
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_database(admin_url: str, bin_dir: Path | None, *, name_prefix: str = "bastion_test") -> Iterator[TestDatabase]:
    """An empty database and a service-role prefix of its own, both dropped at the end."""
    suffix = secrets.token_hex(4)
    name = f"{name_prefix}_{suffix}"
    prefix = f"{name_prefix[:8]}_{suffix}"
    data_dir = Path(tempfile.mkdtemp(prefix="bastion-test-data-"))
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    owner_url = make_url(plain_dsn(admin_url)).set(database=name).render_as_string(hide_password=False)
    try:
        yield TestDatabase(owner_url=owner_url, role_prefix=prefix, data_dir=data_dir, bin_dir=bin_dir)
    finally:
        roles = ServiceRoles(prefix)
        asyncio.run(
            _admin(
                admin_url,
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                *(f'DROP ROLE IF EXISTS "{role}"' for role in roles.all),
            )
        )
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def migrated_database(
    admin_url: str, bin_dir: Path | None, *, name_prefix: str = "bastion_test", vault_keys: KeyEncryptionKeys | None = None
) -> Iterator[TestDatabase]:
    """A fresh database with its keyring, certificates and vault key, migrated to head. The
    vault's first key version is made in `vault_keys` (the caller's, left open), else in a
    local keyring in the data directory."""
    with fresh_database(admin_url, bin_dir, name_prefix=name_prefix) as database:
        LocalKeyring.open(database.data_dir, create=True)
        create_metrics_token(database.data_dir)
        init_certs(database.data_dir)
        asyncio.run(migrate.upgrade(database.owner_url, database.data_dir, database.roles))
        asyncio.run(_first_vault_key(database, vault_keys))
        yield database


@contextmanager
def cloned_database(admin_url: str, template: TestDatabase) -> Iterator[TestDatabase]:
    """A copy of `template`'s database (its roles and data directory shared), dropped at the
    end: a private database in a fraction of a migration's time. Nothing may be connected to
    the template while it is copied."""
    source = make_url(template.owner_url)
    name = f"{source.database}_{secrets.token_hex(4)}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{source.database}"'))
    try:
        yield replace(template, owner_url=source.set(database=name).render_as_string(hide_password=False))
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _first_vault_key(database: TestDatabase, vault_keys: KeyEncryptionKeys | None) -> None:
    owner = bootstrap.owner_database(database.owner_url)
    keys = vault_keys or LocalKeyEncryptionKeys(bootstrap.vault_keys_directory(database.data_dir))
    try:
        await ensure_key_version(owner, keys)
    finally:
        if vault_keys is None:
            keys.close()
        await owner.dispose()


PROCESS_STOP_TIMEOUT_S = 10


def stop_process(process: "subprocess.Popen[bytes]") -> None:
    """SIGTERM, then SIGKILL if it has not exited within PROCESS_STOP_TIMEOUT_S."""
    process.terminate()
    try:
        process.wait(timeout=PROCESS_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=PROCESS_STOP_TIMEOUT_S)


@dataclass(frozen=True)
class ApiProcess:
    url: str
    log_file: IO[bytes]

    def logs(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        # pread: the process shares the file offset, so a seek here would move its writes.
        size = os.fstat(self.log_file.fileno()).st_size
        return os.pread(self.log_file.fileno(), size, 0).decode(errors="replace")


@contextmanager
def running_api(database: TestDatabase, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """A real `bastion api` process on 127.0.0.1; yields its base URL."""
    with running_api_process(database, extra_env) as api:
        yield api.url


@contextmanager
def running_api_process(
    database: TestDatabase, extra_env: dict[str, str] | None = None, *, port: int | None = None
) -> Iterator[ApiProcess]:
    """A real `bastion api` process on 127.0.0.1 (`port`, default a free one); yields its URL and its captured logs."""
    port = port or free_port()
    with _running(["api", "--host", "127.0.0.1", "--port", str(port)], [port], {**database.env(), **(extra_env or {})}) as log:
        yield ApiProcess(url=f"http://127.0.0.1:{port}", log_file=log)


# Every shopper of a test (and of a benchmark) comes from 127.0.0.1, where a real vault would
# see each from its own address: the per-client limits are lifted on these vaults, and
# tests/vault/test_card_testing.py sets them back on vaults of its own.
ONE_CLIENT_FOR_ALL_SHOPPERS = {
    "BASTION_VAULT_TOKENIZE_PER_IP_PER_S": "1000000",
    "BASTION_VAULT_TOKENIZE_PER_IP_BURST": "1000000",
    "BASTION_VAULT_CARD_TESTING_PER_CLIENT": "1000000",
}


@contextmanager
def running_vault(
    database: TestDatabase, extra_env: dict[str, str] | None = None, *, ports: tuple[int, int] | None = None, workers: int = 1
) -> Iterator[ApiProcess]:
    """A real `bastion vault` (`workers` processes): its browser origin and its mutual-TLS
    listener on `ports` (default: the database's vault ports, which the session's vault
    holds); yields the browser origin and the captured logs."""
    public, internal = ports or (database.vault_port, database.vault_internal_port)
    command = ["vault", "--host", "127.0.0.1", "--port", str(public), "--internal-port", str(internal)]
    command += ["--workers", str(workers)]
    env = {**database.env(), **ONE_CLIENT_FOR_ALL_SHOPPERS, **(extra_env or {})}
    with _running(command, [public, internal], env) as log:
        yield ApiProcess(url=f"http://127.0.0.1:{public}", log_file=log)


@contextmanager
def running_acquirer(
    database: TestDatabase, extra_env: dict[str, str] | None = None, *, ports: tuple[int, int] | None = None
) -> Iterator[ApiProcess]:
    """A real `bastion acquirer` on `ports` (its protocol and its pages; default: the database's
    acquirer ports, which the session's acquirer holds); yields its URL and its logs."""
    port, pages_port = ports or (database.acquirer_port, database.acquirer_pages_port)
    command = ["acquirer", "--host", "127.0.0.1", "--port", str(port), "--pages-port", str(pages_port)]
    with _running(command, [port, pages_port], {**database.env(), **(extra_env or {})}) as log:
        yield ApiProcess(url=f"https://127.0.0.1:{port}", log_file=log)


@contextmanager
def running_worker(database: TestDatabase, extra_env: dict[str, str] | None = None) -> Iterator[ApiProcess]:
    """A real `bastion worker` (the relay, the webhook sender, the duties); it listens on no
    port, so its `url` is empty; yields its captured logs."""
    with _running(["worker"], [], {**database.env(), **(extra_env or {})}) as log:
        yield ApiProcess(url="", log_file=log)


@contextmanager
def _running(arguments: list[str], ports: list[int], env: dict[str, str]) -> Iterator[IO[bytes]]:
    """`bastion <arguments>` until every port accepts connections; yields its log file."""
    log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in the finally below, after the process)
    process = subprocess.Popen([sys.executable, "-m", "bastion", *arguments], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    try:
        for port in ports:
            while not accepts_connections(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    output = log.read().decode(errors="replace")[-3000:]
                    raise RuntimeError(f"bastion {arguments[0]} did not start: {output}")
                time.sleep(0.1)
        yield log
    finally:
        stop_process(process)
        log.close()
