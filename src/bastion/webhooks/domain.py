"""Pure rules of webhook endpoints: their signing secrets, the events they subscribe to, and
their limits."""

import base64
import binascii
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Final, Literal

SECRET_PREFIX: Final = "whsec_"  # noqa: S105  (a prefix, not a secret)
# Standard Webhooks asks for 24 to 64 random bytes; 32 is HMAC-SHA256's own key size.
SECRET_BYTES: Final = 32
SECRET_BYTES_MIN: Final = 24
SECRET_BYTES_MAX: Final = 64
# After a rotation the old secret still signs, beside the new one, for this long.
ROTATION_OVERLAP = timedelta(hours=24)
ENDPOINTS_PER_MODE_MAX: Final = 16
ENABLED_EVENTS_MAX: Final = 256
ALL_EVENTS: Final = "*"
WILDCARD_SUFFIX: Final = ".*"
# How an endpoint's deliveries are signed (signing.py): Standard Webhooks' headers, or Stripe's
# `Stripe-Signature`, for receivers that already verify Stripe's events with Stripe's libraries.
SignatureScheme = Literal["standard_webhooks", "stripe"]


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_problem(secret: str) -> str | None:
    """Why `secret` is not a signing secret receivers can verify with (None when it is one):
    `whsec_` and the base64 of SECRET_BYTES_MIN to SECRET_BYTES_MAX bytes."""
    if not secret.startswith(SECRET_PREFIX):
        return f"a signing secret starts with '{SECRET_PREFIX}'"
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        return f"a signing secret is '{SECRET_PREFIX}' and base64"
    if not SECRET_BYTES_MIN <= len(key) <= SECRET_BYTES_MAX:
        return f"a signing secret holds {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX} bytes, not {len(key)}"
    return None


def event_pattern_problem(pattern: str, known: frozenset[str]) -> str | None:
    """Why `pattern` names no event of `known` (None when it names some): `*`, an event type, or
    a prefix of event types ending in `.*` (`payment_intent.*`)."""
    if pattern == ALL_EVENTS or pattern in known:
        return None
    if pattern.endswith(WILDCARD_SUFFIX):
        prefix = pattern.removesuffix("*")
        if any(event_type.startswith(prefix) for event_type in known):
            return None
        return f"'{pattern}' matches no event type"
    return f"'{pattern}' is not an event type: name one (docs/webhooks.md), a prefix such as 'charge.*', or '*'"


def subscribed(patterns: Sequence[str], event_type: str) -> bool:
    """Whether `event_type` matches any of `patterns`: `*`, itself, or a prefix ending in `.*`."""
    return any(
        pattern in (ALL_EVENTS, event_type)
        or (pattern.endswith(WILDCARD_SUFFIX) and event_type.startswith(pattern.removesuffix("*")))
        for pattern in patterns
    )
