"""Envelope encryption and fingerprints on the local keyring. `EnvelopeBehaviour` holds what
every keyring provider must do; the PKCS#11 tests run it again on a SoftHSM2 token."""

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bastion.kernel.errors import ConfigurationError
from bastion.platform.db import Tenant
from bastion.vault.envelope import (
    ALGORITHM_AES256GCM_WRAPPED,
    FINGERPRINT_HEX_CHARS,
    Sealed,
    binding,
    fingerprint,
    open_sealed,
    rewrap,
    seal,
)
from bastion.vault.errors import DecryptionFailed
from bastion.vault.keyring import (
    KeyEncryptionKeys,
    LocalKeyEncryptionKeys,
    open_key_encryption_keys,
)

OpenKeys = Callable[[], KeyEncryptionKeys]

CARD = b'{"number": "4242424242424242", "name": "Ada Lovelace"}'
AAD = binding("card_1", "mer_1", "card")
LIVE_1 = Tenant("mer_1", livemode=True)
THREADS = 4
ROUND_TRIPS_PER_THREAD = 50
THREAD_TIMEOUT_S = 60


def _flip_last_bit(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _drop_last_byte(data: bytes) -> bytes:
    return data[:-1]


def _changed(sealed: Sealed, field: str, change: Callable[[bytes], bytes]) -> Sealed:
    changes: dict[str, Any] = {field: change(getattr(sealed, field))}
    return replace(sealed, **changes)


class EnvelopeBehaviour:
    """Subclasses provide `open_keys`: a keyring on the same key store at each call, closed at teardown."""

    @pytest.fixture
    def keys(self, open_keys: OpenKeys) -> KeyEncryptionKeys:
        keys = open_keys()
        keys.create_fingerprint_root()
        keys.create_version(1)
        return keys

    def test_round_trip(self, keys: KeyEncryptionKeys) -> None:
        sealed = seal(keys, 1, CARD, AAD)
        assert (sealed.algorithm, sealed.key_version) == (ALGORITHM_AES256GCM_WRAPPED, 1)
        assert CARD not in sealed.ciphertext
        assert open_sealed(keys, sealed, AAD) == CARD

    def test_each_seal_has_its_own_data_key_and_nonce(self, keys: KeyEncryptionKeys) -> None:
        first, second = seal(keys, 1, CARD, AAD), seal(keys, 1, CARD, AAD)
        assert first.wrapped_key != second.wrapped_key
        assert first.nonce != second.nonce
        assert first.ciphertext != second.ciphertext

    @pytest.mark.parametrize(
        "other",
        [binding("card_2", "mer_1", "card"), binding("card_1", "mer_2", "card"), binding("card_1", "mer_1", "cvc")],
        ids=["record", "merchant", "purpose"],
    )
    def test_a_ciphertext_opens_only_for_its_binding(self, keys: KeyEncryptionKeys, other: bytes) -> None:
        sealed = seal(keys, 1, CARD, AAD)
        with pytest.raises(DecryptionFailed):
            open_sealed(keys, sealed, other)

    def test_binding_parts_cannot_slide_into_each_other(self) -> None:
        assert binding("card_1", "mer_1", "card") != binding("card_1m", "er_1", "card")

    @pytest.mark.parametrize("change", [_flip_last_bit, _drop_last_byte])
    @pytest.mark.parametrize("field", ["ciphertext", "nonce", "wrapped_key"])
    def test_tampering_fails(self, keys: KeyEncryptionKeys, field: str, change: Callable[[bytes], bytes]) -> None:
        sealed = seal(keys, 1, CARD, AAD)
        with pytest.raises(DecryptionFailed):
            open_sealed(keys, _changed(sealed, field, change), AAD)

    def test_an_unknown_algorithm_fails(self, keys: KeyEncryptionKeys) -> None:
        sealed = seal(keys, 1, CARD, AAD)
        with pytest.raises(DecryptionFailed):
            open_sealed(keys, replace(sealed, algorithm=2), AAD)

    def test_a_wrapped_key_cannot_be_relabelled_to_another_version(self, keys: KeyEncryptionKeys) -> None:
        keys.create_version(2)
        sealed = seal(keys, 1, CARD, AAD)
        with pytest.raises(DecryptionFailed):
            open_sealed(keys, replace(sealed, key_version=2), AAD)
        with pytest.raises(DecryptionFailed):
            open_sealed(keys, replace(sealed, key_version=4096), AAD)

    def test_wrapping_under_a_missing_version_is_a_configuration_error(self, keys: KeyEncryptionKeys) -> None:
        assert not keys.has_version(4096)
        with pytest.raises(ConfigurationError):
            seal(keys, 4096, CARD, AAD)

    def test_rewrap_moves_the_data_key_and_keeps_the_content(self, keys: KeyEncryptionKeys) -> None:
        keys.create_version(2)
        sealed = seal(keys, 1, CARD, AAD)
        moved = rewrap(keys, sealed, AAD, 2)
        assert moved.key_version == 2
        assert (moved.nonce, moved.ciphertext) == (sealed.nonce, sealed.ciphertext)
        assert moved.wrapped_key != sealed.wrapped_key
        assert open_sealed(keys, moved, AAD) == CARD
        with pytest.raises(DecryptionFailed):
            open_sealed(keys, replace(moved, key_version=1), AAD)

    def test_rewrap_refuses_a_foreign_binding(self, keys: KeyEncryptionKeys) -> None:
        keys.create_version(2)
        sealed = seal(keys, 1, CARD, AAD)
        with pytest.raises(DecryptionFailed):
            rewrap(keys, sealed, binding("card_2", "mer_1", "card"), 2)

    def test_create_version_is_idempotent(self, open_keys: OpenKeys, keys: KeyEncryptionKeys) -> None:
        sealed = seal(keys, 1, CARD, AAD)
        keys.create_version(1)
        assert keys.has_version(1)
        assert open_sealed(keys, sealed, AAD) == CARD
        reopened = open_keys()
        reopened.create_version(1)
        assert open_sealed(reopened, sealed, AAD) == CARD

    def test_fingerprints(self, open_keys: OpenKeys, keys: KeyEncryptionKeys) -> None:
        visa = fingerprint(keys, LIVE_1, "4242424242424242")
        assert len(bytes.fromhex(visa)) * 2 == FINGERPRINT_HEX_CHARS
        assert fingerprint(keys, LIVE_1, "4242424242424242") == visa
        assert fingerprint(open_keys(), LIVE_1, "4242424242424242") == visa  # the root persists
        assert fingerprint(keys, Tenant("mer_2", livemode=True), "4242424242424242") != visa
        assert fingerprint(keys, LIVE_1, "5555555555554444") != visa
        assert visa != hashlib.sha256(b"4242424242424242").hexdigest()[:FINGERPRINT_HEX_CHARS]
        assert len(keys.fingerprint_key("mer_1", livemode=True)) == 32
        reopened = open_keys()
        reopened.create_fingerprint_root()  # a second install step changes nothing
        assert reopened.has_fingerprint_root()
        assert fingerprint(reopened, LIVE_1, "4242424242424242") == visa

    def test_a_test_mode_fingerprint_says_nothing_of_the_live_one(self, keys: KeyEncryptionKeys) -> None:
        """A test secret key could otherwise confirm a live card: tokenize candidates in test
        mode and compare their fingerprints with a live payment method's (issue 12, item 1)."""
        test_1 = Tenant("mer_1", livemode=False)
        assert fingerprint(keys, test_1, "4242424242424242") != fingerprint(keys, LIVE_1, "4242424242424242")
        assert fingerprint(keys, test_1, "4242424242424242") == fingerprint(keys, test_1, "4242424242424242")
        assert keys.fingerprint_key("mer_1", livemode=False) != keys.fingerprint_key("mer_1", livemode=True)

    def test_threads_share_a_keyring(self, keys: KeyEncryptionKeys) -> None:
        def round_trips(thread: int) -> None:
            for index in range(ROUND_TRIPS_PER_THREAD):
                aad = binding(f"card_{thread}_{index}", f"mer_{thread}", "card")
                assert open_sealed(keys, seal(keys, 1, CARD, aad), aad) == CARD
                fingerprint(keys, Tenant(f"mer_{thread}_{index}", livemode=False), "4242424242424242")

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            for running in [pool.submit(round_trips, thread) for thread in range(THREADS)]:
                running.result(timeout=THREAD_TIMEOUT_S)


class TestLocalEnvelope(EnvelopeBehaviour):
    @pytest.fixture
    def open_keys(self, tmp_path: Path) -> Iterator[OpenKeys]:
        opened: list[KeyEncryptionKeys] = []

        def open_keys() -> KeyEncryptionKeys:
            opened.append(LocalKeyEncryptionKeys(tmp_path / "keys"))
            return opened[-1]

        yield open_keys
        for keys in opened:
            keys.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_local_key_files_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    keys = LocalKeyEncryptionKeys(directory)
    keys.create_fingerprint_root()
    keys.create_version(1)
    assert _mode(directory) == 0o700
    assert _mode(directory / "fingerprint.key") == 0o600
    assert _mode(directory / "kek-v1.key") == 0o600
    assert len((directory / "kek-v1.key").read_bytes()) == 32
    assert sorted(path.name for path in directory.iterdir()) == ["fingerprint.key", "kek-v1.key"]


def test_local_create_version_never_replaces_a_key(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    keys = LocalKeyEncryptionKeys(directory)
    keys.create_version(1)
    kek = (directory / "kek-v1.key").read_bytes()
    # What a crash after the link and before the clean-up leaves: the key and a stray temporary.
    (directory / ".kek-v1.key.crashed.tmp").write_bytes(os.urandom(32))
    LocalKeyEncryptionKeys(directory).create_version(1)
    assert (directory / "kek-v1.key").read_bytes() == kek


def test_a_lost_fingerprint_root_is_never_silently_replaced(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    installed = LocalKeyEncryptionKeys(directory)
    installed.create_fingerprint_root()
    installed.create_version(1)
    (directory / "fingerprint.key").unlink()
    keys = LocalKeyEncryptionKeys(directory)
    assert not keys.has_fingerprint_root()
    with pytest.raises(ConfigurationError, match="holds no card fingerprint root: restore it"):
        fingerprint(keys, LIVE_1, "4242424242424242")
    assert not (directory / "fingerprint.key").exists()


def test_local_keyring_refuses_a_shared_directory(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o750)
    directory.chmod(0o750)
    with pytest.raises(ConfigurationError, match="0700"):
        LocalKeyEncryptionKeys(directory)


def test_local_keyring_refuses_a_truncated_key(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    LocalKeyEncryptionKeys(directory).create_version(1)
    (directory / "kek-v1.key").write_bytes(b"short")
    with pytest.raises(ConfigurationError, match="32 bytes"):
        LocalKeyEncryptionKeys(directory).has_version(1)


def test_open_local(tmp_path: Path) -> None:
    keys = open_key_encryption_keys(
        "local", local_directory=tmp_path / "keys", pkcs11_module=None, pkcs11_token_label=None, pkcs11_pin=None
    )
    assert keys.provider == "local"
    keys.close()


def test_open_unknown_provider(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown key-encryption keyring provider 'vault'"):
        open_key_encryption_keys("vault", local_directory=tmp_path, pkcs11_module=None, pkcs11_token_label=None, pkcs11_pin=None)


def test_open_pkcs11_names_missing_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"needs its token label, PIN$"):
        open_key_encryption_keys(
            "pkcs11", local_directory=tmp_path, pkcs11_module="/usr/lib/module.so", pkcs11_token_label=None, pkcs11_pin=""
        )
