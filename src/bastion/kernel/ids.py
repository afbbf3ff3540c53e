"""Prefixed, time-sortable identifiers (`cus_01J...`).

Layout: 48-bit millisecond timestamp then 80 random bits, Crockford base32, so that
ids sort by creation time and lists can page on the id alone.
"""

import re
import secrets
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BODY_LENGTH = 26
_BODY_PATTERN = f"[{_ALPHABET}]{{{_BODY_LENGTH}}}"

PREFIXES = frozenset(
    {
        "mer",
        "key",
        "cus",
        "evt",
        "req",
        "la",
        "le",
        "tok",
        "crd",
        "pm",
        "cts",
        "pi",
        "ch",
        "re",
        "dp",
        "acqp",
        "acqr",
        "acqn",
        "acqd",
        "acqs",
        "stl",
        "txn",
        "rs",
        "rsl",
        "rsli",
        "rd",
        "prv",
        "we",
        "whd",
        "wha",
        "ca",
        "rr",
        "rhi",
    }
)


def new_id(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(_BODY_LENGTH):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def created_at(value: str) -> datetime:
    """When the id `value` was made: the milliseconds its first 48 bits count."""
    number = 0
    for char in value.rsplit("_", 1)[-1]:
        number = number * 32 + _ALPHABET.index(char)
    return datetime.fromtimestamp((number >> 80) / 1000, UTC)


def id_pattern(prefix: str) -> str:
    """The regular expression (anchored) of `prefix`'s ids, as the OpenAPI document states it."""
    return f"^{prefix}_{_BODY_PATTERN}$"


def is_id(value: str, prefix: str) -> bool:
    return re.fullmatch(f"{prefix}_{_BODY_PATTERN}", value) is not None
