"""Deliveries signed per the Standard Webhooks specification: `webhook-id` (the event's id,
the same on every retry), `webhook-timestamp` (unix seconds of this attempt) and
`webhook-signature`, `v1,<base64 HMAC-SHA256>` over `<id>.<timestamp>.<body>` keyed with the
base64-decoded part of the `whsec_` secret; one signature per secret, space-separated, while a
rotated secret still signs beside its successor. Receivers verify with the `standardwebhooks`
libraries (docs/webhooks.md)."""

import base64
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from bastion.webhooks.domain import SECRET_PREFIX


def signature_headers(message_id: str, timestamp_s: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The three headers of a delivery of `body`, signed with each of `secrets` (`whsec_...`)."""
    signed = f"{message_id}.{timestamp_s}.".encode() + body
    signatures = []
    for secret in secrets:
        mac = HMAC(base64.b64decode(secret.removeprefix(SECRET_PREFIX)), hashes.SHA256())
        mac.update(signed)
        signatures.append(f"v1,{base64.b64encode(mac.finalize()).decode()}")
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp_s), "webhook-signature": " ".join(signatures)}
