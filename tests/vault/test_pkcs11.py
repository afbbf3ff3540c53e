"""The PKCS#11 keyring on a real SoftHSM2 token: every keyring behaviour, the keys' attributes as
the HSM reports them, recovery after a crash mid-rotation, and the ways opening it can fail."""

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass

from bastion.kernel.errors import ConfigurationError
from bastion.vault.envelope import open_sealed, seal
from bastion.vault.errors import DecryptionFailed
from bastion.vault.keyring import (
    KeyEncryptionKeys,
    LocalKeyEncryptionKeys,
    Pkcs11KeyEncryptionKeys,
    open_key_encryption_keys,
)
from tests.support.softhsm import SoftHsmToken
from tests.vault.test_envelope import AAD, CARD, EnvelopeBehaviour, OpenKeys

SUBPROCESS_TIMEOUT_S = 60
# Versions only these tests create on the session's token (the shared behaviours use 1 and 2).
CRASH_VERSION = 7


@pytest.fixture
def open_keys(softhsm_token: SoftHsmToken) -> Iterator[OpenKeys]:
    opened: list[KeyEncryptionKeys] = []

    def open_keys() -> KeyEncryptionKeys:
        opened.append(Pkcs11KeyEncryptionKeys(softhsm_token.module_path, softhsm_token.token_label, softhsm_token.pin))
        return opened[-1]

    yield open_keys
    for keys in opened:
        keys.close()


class TestPkcs11Envelope(EnvelopeBehaviour):
    pass


@pytest.fixture
def token_session(softhsm_token: SoftHsmToken, open_keys: OpenKeys) -> Iterator[pkcs11.Session]:
    """A public session of the test's own: it sees private objects while a keyring holds the
    login (login belongs to the application), and closing it does not log out."""
    open_keys().create_fingerprint_root()
    session = pkcs11.lib(softhsm_token.module_path).get_token(token_label=softhsm_token.token_label).open()
    yield session
    session.close()


def _labelled(session: pkcs11.Session, label: str) -> list[pkcs11.Object]:
    return list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}))


def test_the_kek_never_leaves_the_hsm(open_keys: OpenKeys, token_session: pkcs11.Session) -> None:
    open_keys().create_version(1)
    [kek] = _labelled(token_session, "bastion-vault-kek-v1")
    assert kek[Attribute.KEY_TYPE] == pkcs11.KeyType.AES
    assert kek[Attribute.VALUE_LEN] == 32
    assert kek[Attribute.TOKEN] is True
    assert kek[Attribute.PRIVATE] is True
    assert kek[Attribute.SENSITIVE] is True
    assert kek[Attribute.ALWAYS_SENSITIVE] is True
    assert kek[Attribute.EXTRACTABLE] is False
    assert kek[Attribute.NEVER_EXTRACTABLE] is True
    assert kek[Attribute.MODIFIABLE] is False
    assert (kek[Attribute.ENCRYPT], kek[Attribute.DECRYPT]) == (True, True)
    for capability in (Attribute.WRAP, Attribute.UNWRAP, Attribute.SIGN, Attribute.VERIFY, Attribute.DERIVE):
        assert kek[capability] is False, capability
    with pytest.raises(pkcs11.AttributeSensitive):
        kek[Attribute.VALUE]


def test_the_fingerprint_root_never_leaves_the_hsm(token_session: pkcs11.Session) -> None:
    [root] = _labelled(token_session, "bastion-vault-fingerprint")
    assert root[Attribute.KEY_TYPE] == pkcs11.KeyType.GENERIC_SECRET
    assert (root[Attribute.SENSITIVE], root[Attribute.EXTRACTABLE]) == (True, False)
    assert root[Attribute.SIGN] is True
    for capability in (Attribute.ENCRYPT, Attribute.DECRYPT, Attribute.WRAP, Attribute.UNWRAP, Attribute.DERIVE):
        assert root[capability] is False, capability
    with pytest.raises(pkcs11.AttributeSensitive):
        root[Attribute.VALUE]


_CREATE_AND_DIE = """
import os, signal, sys
from bastion.vault.keyring import Pkcs11KeyEncryptionKeys
keys = Pkcs11KeyEncryptionKeys(sys.argv[1], sys.argv[2], os.environ["TEST_PKCS11_PIN"])
keys.create_version(int(sys.argv[3]))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_create_version_after_a_crash(softhsm_token: SoftHsmToken, open_keys: OpenKeys, token_session: pkcs11.Session) -> None:
    """A rotation killed right after creating its KEK: the next run finds it and makes no second one."""
    died = subprocess.run(
        [sys.executable, "-c", _CREATE_AND_DIE, softhsm_token.module_path, softhsm_token.token_label, str(CRASH_VERSION)],
        env={**softhsm_token.env(), "TEST_PKCS11_PIN": softhsm_token.pin},
        capture_output=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert died.returncode == -9, died.stderr
    keys = open_keys()
    assert keys.has_version(CRASH_VERSION)
    keys.create_version(CRASH_VERSION)
    assert len(_labelled(token_session, f"bastion-vault-kek-v{CRASH_VERSION}")) == 1
    assert open_sealed(keys, seal(keys, CRASH_VERSION, CARD, AAD), AAD) == CARD


def test_keyrings_on_one_token_share_its_login(softhsm_token: SoftHsmToken, open_keys: OpenKeys) -> None:
    """PKCS#11 login belongs to the process: closing one keyring must not log the other out."""
    first, second = open_keys(), open_keys()
    first.create_version(1)
    sealed = seal(first, 1, CARD, AAD)
    first.close()
    assert open_sealed(second, sealed, AAD) == CARD
    with pytest.raises(ConfigurationError, match="closed"):
        open_sealed(first, sealed, AAD)


def test_a_wrong_pin_is_refused_beside_an_open_keyring(softhsm_token: SoftHsmToken, open_keys: OpenKeys) -> None:
    open_keys()
    with pytest.raises(ConfigurationError, match="refused the PIN"):
        Pkcs11KeyEncryptionKeys(softhsm_token.module_path, softhsm_token.token_label, softhsm_token.pin + "0")


_OPEN_WITH_WRONG_PIN = """
import os, sys
from pathlib import Path
from bastion.kernel.errors import ConfigurationError
from bastion.vault.keyring import open_key_encryption_keys
try:
    open_key_encryption_keys(
        "pkcs11", local_directory=Path("unused"), pkcs11_module=sys.argv[1], pkcs11_token_label=sys.argv[2],
        pkcs11_pin=os.environ["TEST_PKCS11_PIN"] + "0",
    )
except ConfigurationError as error:
    print(error.message)
"""


def test_a_wrong_pin_is_refused_by_the_token(softhsm_token: SoftHsmToken) -> None:
    """In a fresh process, where nothing is logged in yet: the HSM itself checks the PIN."""
    ran = subprocess.run(
        [sys.executable, "-c", _OPEN_WITH_WRONG_PIN, softhsm_token.module_path, softhsm_token.token_label],
        env={**softhsm_token.env(), "TEST_PKCS11_PIN": softhsm_token.pin},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=True,
    )
    assert ran.stdout.strip() == f"the PKCS#11 token {softhsm_token.token_label!r} refused the PIN"
    assert softhsm_token.pin not in ran.stdout + ran.stderr


def test_a_missing_token_is_a_configuration_error(softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="there is no PKCS#11 token labelled 'no-such-token'"):
        open_key_encryption_keys(
            "pkcs11",
            local_directory=tmp_path,
            pkcs11_module=softhsm_token.module_path,
            pkcs11_token_label="no-such-token",
            pkcs11_pin=softhsm_token.pin,
        )


def test_a_missing_module_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot open PKCS#11 token 'bastion' with"):
        open_key_encryption_keys(
            "pkcs11",
            local_directory=tmp_path,
            pkcs11_module=str(tmp_path / "missing.so"),
            pkcs11_token_label="bastion",
            pkcs11_pin="1234",
        )


def test_open_pkcs11(softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    keys = open_key_encryption_keys(
        "pkcs11",
        local_directory=tmp_path,
        pkcs11_module=softhsm_token.module_path,
        pkcs11_token_label=softhsm_token.token_label,
        pkcs11_pin=softhsm_token.pin,
    )
    try:
        assert keys.provider == "pkcs11"
        keys.create_version(1)
        assert open_sealed(keys, seal(keys, 1, CARD, AAD), AAD) == CARD
    finally:
        keys.close()


def test_a_local_keyring_cannot_open_what_the_hsm_sealed(open_keys: OpenKeys, tmp_path: Path) -> None:
    keys = open_keys()
    keys.create_version(1)
    sealed = seal(keys, 1, CARD, AAD)
    local = LocalKeyEncryptionKeys(tmp_path / "keys")
    local.create_version(1)
    with pytest.raises(DecryptionFailed):
        open_sealed(local, sealed, AAD)
    with pytest.raises(DecryptionFailed):
        open_sealed(keys, replace(sealed, wrapped_key=seal(local, 1, CARD, AAD).wrapped_key), AAD)
