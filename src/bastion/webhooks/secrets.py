"""Endpoints' signing secrets, sealed at rest: Bastion must read them again to sign every
delivery, so they are encrypted (AES-256-GCM under a keyring key of their own), not hashed. The
endpoint's id is the associated data, so a sealed secret copied onto another endpoint's row
does not open."""

import secrets
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SECRETS_KEY_PURPOSE: Final = "webhook-endpoint-secrets"
_NONCE_BYTES = 12


class EndpointSecrets:
    """Seals and opens the signing secrets of webhook endpoints under `key` (32 bytes)."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, endpoint_id: str, secret: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, secret.encode(), endpoint_id.encode())

    def open(self, endpoint_id: str, sealed: bytes) -> str:
        return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], endpoint_id.encode()).decode()
