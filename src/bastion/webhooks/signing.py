"""Deliveries' signatures, in the scheme their endpoint chose (docs/webhooks.md); one signature
per secret while a rotated secret still signs beside its successor.

- `standard_webhooks`, per the Standard Webhooks specification: `webhook-id` (the event's id,
  the same on every retry), `webhook-timestamp` (unix seconds of this attempt) and
  `webhook-signature`, `v1,<base64 HMAC-SHA256>` over `<id>.<timestamp>.<body>` keyed with the
  base64-decoded part of the `whsec_` secret, space-separated. Receivers verify with the
  `standardwebhooks` libraries.
- `stripe`, as Stripe signs its own: `Stripe-Signature: t=<timestamp>,v1=<hex HMAC-SHA256>`
  over `<timestamp>.<body>`, comma-separated, keyed with the whole `whsec_...` string as UTF-8,
  which is what Stripe's libraries (`stripe.Webhook.construct_event`) verify with (ADR 34).
"""

import base64
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from bastion.webhooks.domain import SECRET_PREFIX, SignatureScheme


def _macs(keys: Sequence[bytes], signed: bytes) -> list[bytes]:
    """HMAC-SHA256 of `signed` under each of `keys`."""
    macs = []
    for key in keys:
        mac = HMAC(key, hashes.SHA256())
        mac.update(signed)
        macs.append(mac.finalize())
    return macs


def signature_headers(
    scheme: SignatureScheme, message_id: str, timestamp_s: int, body: bytes, secrets: Sequence[str]
) -> dict[str, str]:
    """The signature headers of a delivery of `body` at `timestamp_s`, signed per `scheme` with
    each of `secrets` (`whsec_...`); `message_id` is the event's id."""
    if scheme == "stripe":
        macs = _macs([secret.encode() for secret in secrets], f"{timestamp_s}.".encode() + body)
        # Spelt as Stripe sends it: some receivers read it from a case-sensitive mapping.
        return {"Stripe-Signature": ",".join([f"t={timestamp_s}", *(f"v1={mac.hex()}" for mac in macs)])}
    keys = [base64.b64decode(secret.removeprefix(SECRET_PREFIX)) for secret in secrets]
    macs = _macs(keys, f"{message_id}.{timestamp_s}.".encode() + body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": " ".join(f"v1,{base64.b64encode(mac).decode()}" for mac in macs),
    }
