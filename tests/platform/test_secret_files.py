"""Secret files are written so that only their owner can read them, whole or not at all,
and a secret file others could read stops the process that needs it."""

import stat
from pathlib import Path

import pytest

from bastion.kernel.errors import ConfigurationError
from bastion.platform.crypto import LocalKeyring
from bastion.platform.db import RolePasswords, ServiceRoles
from bastion.platform.secret_files import read_secret, write_secret
from bastion.vault.keyring import LocalKeyEncryptionKeys


def test_a_secret_is_written_0600_whole_and_without_leftovers(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "key"
    write_secret(path, b"first")
    write_secret(path, b"second")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_secret(path) == b"second"
    assert [child.name for child in path.parent.iterdir()] == ["key"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o610])
def test_a_secret_others_could_read_is_refused_by_name(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "key"
    write_secret(path, b"secret")
    path.chmod(mode)
    with pytest.raises(ConfigurationError) as refused:
        read_secret(path)
    assert refused.value.message == f"{path} is readable by others (mode {mode:04o}): run `chmod 600 {path}`, then start again"


def test_every_reader_of_a_secret_checks_it(tmp_path: Path) -> None:
    """The keyring, the roles' passwords and the vault's local key files all refuse a loose file."""
    keyring = tmp_path / "secrets" / "keyring.key"
    LocalKeyring.open(tmp_path, create=True)
    keyring.chmod(0o644)
    with pytest.raises(ConfigurationError, match=r"keyring\.key is readable by others"):
        LocalKeyring.open(tmp_path, create=False)

    passwords = RolePasswords(tmp_path)
    passwords.ensure(ServiceRoles("bastion"))
    passwords.path.chmod(0o640)
    with pytest.raises(ConfigurationError, match=r"db_roles\.json is readable by others"):
        passwords.load()

    vault_keys = tmp_path / "vault-keys"
    keys = LocalKeyEncryptionKeys(vault_keys)
    keys.create_version(1)
    (vault_keys / "kek-v1.key").chmod(0o644)
    with pytest.raises(ConfigurationError, match=r"kek-v1\.key is readable by others"):
        LocalKeyEncryptionKeys(vault_keys).wrap(1, bytes(32), b"aad")
