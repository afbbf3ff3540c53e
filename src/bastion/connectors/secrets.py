"""Connector accounts' credentials, sealed at rest by envelope encryption: Bastion must present
them to the processor, so they are encrypted, not hashed. Each account's credentials (their JSON)
are sealed under a fresh data key, and the data key under the keyring's key for this purpose
alone (ADR 26); the account's id is the associated data of both, so neither copied onto another
account's row opens."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import orjson

from bastion.platform.aead import ALGORITHM, Envelope

CREDENTIALS_KEY_PURPOSE: Final = "connector-credentials"


@dataclass(frozen=True, slots=True)
class SealedCredentials:
    credentials_sealed: bytes
    data_key_sealed: bytes
    # What sealed them, stored beside them: a key rotation or another algorithm is told apart.
    algorithm: str = ALGORITHM
    key_purpose: str = CREDENTIALS_KEY_PURPOSE


class CredentialsSealer:
    """Seals and opens connector accounts' credentials under `key` (32 bytes, the keyring's
    key of CREDENTIALS_KEY_PURPOSE)."""

    def __init__(self, key: bytes) -> None:
        self._envelope = Envelope(key)

    def seal(self, account_id: str, credentials: Mapping[str, str]) -> SealedCredentials:
        return SealedCredentials(*self._envelope.seal(orjson.dumps(dict(credentials)), account_id))

    def open(self, account_id: str, sealed: SealedCredentials) -> dict[str, str]:
        opened: dict[str, str] = orjson.loads(self._envelope.open(sealed.credentials_sealed, sealed.data_key_sealed, account_id))
        return opened
