"""The audit chain's arithmetic, pure: the canonical form of a row, its keyed hash, and
the signed checkpoint message.

`row_hash` is an HMAC under a keyring secret, not a bare hash: whoever can write the
database but does not hold the keyring cannot recompute a consistent chain after an
edit. Checkpoints are Ed25519 signatures over the chain head, so a checkpoint can be
checked (and published) with the public key alone.
"""

import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from hashlib import sha256
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bastion.kernel.errors import invariant
from bastion.platform.crypto import public_key_id

CHAIN_KEY_PURPOSE = "audit-chain"
CHECKPOINT_KEY_PURPOSE = "audit-checkpoint"
GENESIS_HASH = "0" * 64

# Version 1 of the canonical form: every column of audit_events except insert_order (a
# batching hint, not part of the record). A new column needs a new version, or rows
# sealed before it would no longer verify; a test keeps this list and the table in step.
CHAINED_FIELDS = (
    "id",
    "merchant_id",
    "livemode",
    "actor",
    "action_type",
    "resource_type",
    "resource_id",
    "before_state",
    "after_state",
    "ip_address",
    "device_id",
    "request_id",
    "created_at",
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        invariant(value.tzinfo is not None, "audit timestamps must carry a time zone")
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, UUID | IPv4Address | IPv6Address | IPv4Interface | IPv6Interface):
        return str(value)
    return value


def canonical_row(seq: int, row: Mapping[Any, Any]) -> bytes:
    """The bytes that are hashed: the chained fields and the seq as JSON, keys sorted, no whitespace."""
    document = {name: _plain(row[name]) for name in CHAINED_FIELDS}
    document["seq"] = seq
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def row_hash(chain_key: bytes, prev_hash: str, seq: int, row: Mapping[Any, Any]) -> str:
    message = prev_hash.encode() + b"\n" + canonical_row(seq, row)
    return hmac.new(chain_key, message, sha256).hexdigest()


def hashes_equal(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


def checkpoint_message(seq: int, chain_hash: str) -> bytes:
    return f"bastion-audit-checkpoint:v1:{seq}:{chain_hash}".encode()


def sign_checkpoint(signing_key: Ed25519PrivateKey, seq: int, chain_hash: str) -> dict[str, Any]:
    """The audit_checkpoints row that vouches for the chain up to `seq`."""
    return {
        "seq": seq,
        "chain_hash": chain_hash,
        "key_id": public_key_id(signing_key.public_key()),
        "signature": signing_key.sign(checkpoint_message(seq, chain_hash)).hex(),
    }


def checkpoint_signature_valid(public_key: Ed25519PublicKey, seq: int, chain_hash: str, signature_hex: str) -> bool:
    try:
        public_key.verify(bytes.fromhex(signature_hex), checkpoint_message(seq, chain_hash))
    except (ValueError, InvalidSignature):
        return False
    return True
