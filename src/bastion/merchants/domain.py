"""Pure rules of merchants and API keys."""

import ipaddress
import re
import secrets
import string
from dataclasses import dataclass
from urllib.parse import urlsplit

from bastion.merchants.errors import OriginInvalid

# Every scope a key can hold. Routes name one of these; a key holds a subset.
SCOPES = frozenset(
    {
        "customers:read",
        "customers:write",
        "events:read",
        "ledger:read",
        "ledger:write",
        "payment_methods:read",
        "payment_methods:write",
        "payment_intents:read",
        "payment_intents:write",
        "charges:read",
        "refunds:read",
        "refunds:write",
        "disputes:read",
        "disputes:write",
        "balance:read",
        "risk:read",
        "risk:write",
        "reviews:read",
        "reviews:write",
        "webhooks:read",
        "webhooks:write",
        "connectors:read",
        "connectors:write",
        "routing:read",
        "routing:write",
    }
)

_SECRET_ALPHABET = string.ascii_letters + string.digits
_SECRET_LENGTH = 40  # about 238 bits


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated API key."""

    key_id: str
    merchant_id: str
    livemode: bool
    scopes: frozenset[str]


def mode_prefix(livemode: bool) -> str:
    return "live" if livemode else "test"


def generate_secret(kind: str, livemode: bool) -> str:
    body = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(_SECRET_LENGTH))
    return f"{kind}_{mode_prefix(livemode)}_{body}"


def secret_hint(secret: str) -> str:
    return f"{secret[:8]}...{secret[-4:]}"


def unknown_scopes(scopes: list[str]) -> list[str]:
    return sorted(set(scopes) - SCOPES)


ORIGINS_MAX = 20
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_HOSTNAME_LENGTH_MAX = 253


def _ascii_host(hostname: str) -> str | None:
    """The host as browsers send it in `Origin` (an IP address, or a DNS name in its ASCII,
    punycode form), or None when it is neither: a wildcard, whitespace, `;`, `,` or a quote
    would otherwise reach the card fields' `frame-ancestors` policy."""
    try:
        return str(ipaddress.ip_address(hostname))
    except ValueError:
        pass
    try:
        encoded = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = encoded.split(".")
    if len(encoded) > _HOSTNAME_LENGTH_MAX or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    return encoded


def normalized_origin(value: str, *, livemode: bool) -> str:
    """A browser origin as browsers send it (`https://shop.example:8443`): scheme, host, port.
    Live mode: https only. Test mode: also plain http for a page on this machine, where it is
    still a secure context."""
    parsed = urlsplit(value.strip())
    try:
        port = parsed.port
    except ValueError:
        port = -1
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/") or port == -1:
        raise OriginInvalid(f"{value!r} is not an origin like https://shop.example", param="origin")
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise OriginInvalid(f"{value!r} is not an origin like https://shop.example", param="origin")
    hostname = _ascii_host(parsed.hostname)
    if hostname is None:
        raise OriginInvalid(f"{value!r} does not name one host (no wildcards, spaces or punctuation)", param="origin")
    if parsed.scheme == "http" and (livemode or hostname not in _LOCAL_HOSTS):
        raise OriginInvalid(
            "Card fields may be framed only by https pages (and, in test mode, http on localhost)", param="origin"
        )
    host = f"[{hostname}]" if ":" in hostname else hostname
    default_port = {"http": 80, "https": 443}[parsed.scheme]
    return f"{parsed.scheme}://{host}" + (f":{port}" if port is not None and port != default_port else "")
