"""The keyring: where the platform's keys live, and keyed hashing.

Provider `local` keeps one 256-bit root secret in `<data_dir>/secrets/keyring.key`
(created at install, mode 0600) and derives one key per purpose with HKDF-SHA256, so
that a key for one purpose never serves another. A PKCS#11 provider comes with the vault.
"""

import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.kernel.errors import ConfigurationError
from bastion.platform.secret_files import read_secret, write_secret

_ROOT_KEY_BYTES = 32


class Keyring(Protocol):
    def secret(self, purpose: str) -> bytes:
        """A 32-byte secret dedicated to `purpose`."""
        ...

    def signing_key(self, purpose: str) -> Ed25519PrivateKey: ...


def signing_purpose(purpose: str) -> str:
    """The purpose whose secret is the Ed25519 seed of `signing_key(purpose)`."""
    return f"ed25519:{purpose}"


class LocalKeyring:
    def __init__(self, root_key: bytes) -> None:
        if len(root_key) != _ROOT_KEY_BYTES:
            raise ConfigurationError("the local keyring root key must be 32 bytes")
        self._root_key = root_key

    @classmethod
    def open(cls, data_dir: Path, *, create: bool) -> "LocalKeyring":
        path = data_dir / "secrets" / "keyring.key"
        if not path.exists():
            if not create:
                raise ConfigurationError(f"no keyring at {path}: run `bastion migrate` first")
            write_secret(path, secrets.token_bytes(_ROOT_KEY_BYTES))
        return cls(read_secret(path))

    def secret(self, purpose: str) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"bastion:{purpose}".encode()).derive(self._root_key)

    def signing_key(self, purpose: str) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.secret(signing_purpose(purpose)))

    def derive(self, purposes: Iterable[str]) -> dict[str, bytes]:
        """The secrets of `purposes` alone, for a process that must not hold the root (`DerivedKeys`)."""
        return {purpose: self.secret(purpose) for purpose in purposes}


class DerivedKeys:
    """The keyring as a process of `bastion serve` holds it: the secrets of the purposes it
    was granted, derived by `serve`; any other purpose is refused, not derived."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self._keys = dict(keys)

    def secret(self, purpose: str) -> bytes:
        try:
            return self._keys[purpose]
        except KeyError:
            raise ConfigurationError(f"this process was not granted the key of purpose {purpose!r}") from None

    def signing_key(self, purpose: str) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.secret(signing_purpose(purpose)))


@dataclass(frozen=True, slots=True)
class KeyedHasher:
    """HMAC-SHA256 under a keyring secret: for values that must be found again
    (API key secrets) but must not be reversible or guessable from the database alone."""

    key: bytes

    def digest(self, value: str | bytes) -> str:
        data = value.encode() if isinstance(value, str) else value
        return hmac.new(self.key, data, sha256).hexdigest()


def public_key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256(raw).hexdigest()[:16]
