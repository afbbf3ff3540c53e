"""Authenticated encryption of secrets Bastion must read again (webhook signing secrets,
connector credentials): AES-256-GCM, a random 96-bit nonce in front of each ciphertext, and
associated data that binds a ciphertext to the row it belongs to, so that a sealed value
copied onto another row does not open. Envelope encryption puts a fresh data key under a
key-encryption key, so that each row's secret has a key of its own."""

import secrets
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ALGORITHM: Final = "aes-256-gcm"
KEY_BYTES: Final = 32
_NONCE_BYTES = 12


class Sealer:
    """Seals and opens values under `key` (32 bytes); `InvalidTag` when a value does not open."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, associated: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, associated.encode())

    def open(self, sealed: bytes, associated: str) -> bytes:
        return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], associated.encode())


class Envelope:
    """Envelope encryption: each value under a fresh data key, the data key sealed under the
    key-encryption key; both carry the same associated data."""

    def __init__(self, key_encryption_key: bytes) -> None:
        self._kek = Sealer(key_encryption_key)

    def seal(self, plaintext: bytes, associated: str) -> tuple[bytes, bytes]:
        """(the value sealed, its data key sealed)."""
        data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        return Sealer(data_key).seal(plaintext, associated), self._kek.seal(data_key, associated)

    def open(self, sealed: bytes, data_key_sealed: bytes, associated: str) -> bytes:
        return Sealer(self._kek.open(data_key_sealed, associated)).open(sealed, associated)
