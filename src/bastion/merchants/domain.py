"""Pure rules of merchants and API keys."""

import secrets
import string
from dataclasses import dataclass

# Every scope a key can hold. Routes name one of these; a key holds a subset.
SCOPES = frozenset({"customers:read", "customers:write", "events:read", "ledger:read", "ledger:write"})

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
