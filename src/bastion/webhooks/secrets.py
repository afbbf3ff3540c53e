"""Endpoints' signing secrets, sealed at rest: Bastion must read them again to sign every
delivery, so they are encrypted (AES-256-GCM under a keyring key of their own), not hashed. The
endpoint's id is the associated data, so a sealed secret copied onto another endpoint's row
does not open."""

from typing import Final

from bastion.platform.aead import Sealer

SECRETS_KEY_PURPOSE: Final = "webhook-endpoint-secrets"


class EndpointSecrets:
    """Seals and opens the signing secrets of webhook endpoints under `key` (32 bytes)."""

    def __init__(self, key: bytes) -> None:
        self._sealer = Sealer(key)

    def seal(self, endpoint_id: str, secret: str) -> bytes:
        return self._sealer.seal(secret.encode(), endpoint_id)

    def open(self, endpoint_id: str, sealed: bytes) -> str:
        return self._sealer.open(sealed, endpoint_id).decode()
