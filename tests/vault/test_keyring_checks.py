"""A keyring that lost a key stops `bastion migrate` and `bastion vault` with a clear error,
and nothing makes a replacement behind the operator's back: a new fingerprint root would
give every card a new fingerprint, and a new key version would leave cards undecryptable."""

import pytest

from bastion import bootstrap
from tests.support.cli import run_bastion
from tests.support.postgres import TestDatabase, free_port

pytestmark = pytest.mark.processes


@pytest.mark.parametrize(
    ("lost", "message"),
    [
        ("fingerprint.key", "holds no card fingerprint root: restore it from the keyring's backup"),
        ("kek-v1.key", "the local keyring does not hold key version 1"),
    ],
)
async def test_a_lost_key_stops_migrate_and_the_vault(private_database: TestDatabase, lost: str, message: str) -> None:
    keys = bootstrap.vault_keys_directory(private_database.data_dir)
    (keys / lost).unlink()
    env = private_database.env()
    migrated = await run_bastion("migrate", env=env)
    assert migrated.returncode == 1
    assert message in migrated.stderr
    vault = await run_bastion("vault", "--port", str(free_port()), "--internal-port", str(free_port()), env=env)
    assert vault.returncode == 1
    assert message in vault.stderr
    assert not (keys / lost).exists()
