"""Timestamped HMAC-SHA256 signatures of a request body, in the form Stripe's webhooks made
familiar: `t=<unix seconds>,v1=<hex>`, over `<t>.<body>`. The time is signed with the body, so
that a captured request cannot be replayed later than the receiver's tolerance."""

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from bastion.kernel.errors import AuthenticationFailed

# How old (or how far ahead) a signed time may be when it arrives.
SIGNATURE_TOLERANCE_S = 300
SIGNATURE_HEADER_LENGTH_MAX = 512
_SCHEME = "v1"


def _mac(secret: bytes, body: bytes, timestamp: int) -> HMAC:
    mac = HMAC(secret, hashes.SHA256())
    mac.update(f"{timestamp}.".encode() + body)
    return mac


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    return f"t={timestamp},{_SCHEME}={_mac(secret, body, timestamp).finalize().hex()}"


def verify(secret: bytes, body: bytes, header: str | None, *, now: int, tolerance_s: int = SIGNATURE_TOLERANCE_S) -> None:
    """Refuse (`AuthenticationFailed`) unless `header` holds a signature of `body` by `secret`
    made within `tolerance_s` of `now`. Every `v1` signature in the header is tried, so that a
    sender may sign with two secrets while one replaces the other."""
    if header is None or len(header) > SIGNATURE_HEADER_LENGTH_MAX:
        raise AuthenticationFailed("The request carries no valid signature header.")
    timestamp: int | None = None
    signatures: list[bytes] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == _SCHEME:
            try:
                signatures.append(bytes.fromhex(value))
            except ValueError:
                continue
    if timestamp is None or not signatures:
        raise AuthenticationFailed("The signature header needs a time `t=` and a `v1=` signature.")
    if abs(now - timestamp) > tolerance_s:
        raise AuthenticationFailed(f"The signature's time is more than {tolerance_s} s from now: refused as a replay.")
    for signature in signatures:
        try:
            _mac(secret, body, timestamp).verify(signature)
        except InvalidSignature:
            continue
        return
    raise AuthenticationFailed("No signature in the header matches the body.")
