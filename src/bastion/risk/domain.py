"""Risk's rules that need no database: the limits, the statuses of a ruleset, and how a list
item of each kind is written down (docs/risk.md)."""

import ipaddress
import re
from collections.abc import Callable
from enum import StrEnum

from bastion.risk.attributes import ListKind

RULES_PER_RULESET_MAX = 200
LISTS_PER_MERCHANT_MAX = 100
ITEMS_PER_LIST_MAX = 10_000
LIST_ITEM_LENGTH_MAX = 320  # an email address's longest


class RulesetStatus(StrEnum):
    DRAFT = "draft"
    LIVE = "live"  # decides every attempt
    SHADOW = "shadow"  # runs beside the live one and decides nothing
    RETIRED = "retired"


# Which of the two slots a ruleset takes when activated; one ruleset per slot.
ACTIVE_STATUSES = frozenset({RulesetStatus.LIVE, RulesetStatus.SHADOW})

_FINGERPRINT = re.compile(r"[0-9a-f]{16,64}")
_EMAIL = re.compile(r"[^@\s]{1,64}@([A-Za-z0-9-]{1,63}\.)+[A-Za-z0-9-]{1,63}")
_DOMAIN = re.compile(r"([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DEVICE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_CARD_BIN = re.compile(r"[0-9]{6,8}")
_COUNTRY = re.compile(r"[A-Z]{2}")


def _domain(value: str) -> str:
    try:
        ascii_domain = value.strip().rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError("must be a domain name, such as example.com") from None
    if not _DOMAIN.fullmatch(ascii_domain):
        raise ValueError("must be a domain name, such as example.com")
    return ascii_domain


def _email(value: str) -> str:
    local, at, domain = value.strip().rpartition("@")
    if not at or not _EMAIL.fullmatch(value.strip()):
        raise ValueError("must be an email address, such as name@example.com")
    return f"{local.lower()}@{_domain(domain)}"


def _ip(value: str) -> str:
    """An address, or a CIDR range (its host bits may be set: 203.0.113.7/24 is 203.0.113.0/24)."""
    try:
        if "/" in value:
            return str(ipaddress.ip_network(value.strip(), strict=False))
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError("must be an IP address or a CIDR range, such as 203.0.113.7 or 2001:db8::/32") from None


def _matching(pattern: re.Pattern[str], description: str, *, upper: bool = False, lower: bool = False) -> Callable[[str], str]:
    def normalized(value: str) -> str:
        value = value.strip()
        value = value.upper() if upper else value.lower() if lower else value
        if not pattern.fullmatch(value):
            raise ValueError(f"must be {description}")
        return value

    return normalized


_NORMALIZERS = {
    ListKind.CARD_FINGERPRINT: _matching(_FINGERPRINT, "a card fingerprint, as a payment method's card.fingerprint", lower=True),
    ListKind.EMAIL: _email,
    ListKind.EMAIL_DOMAIN: _domain,
    ListKind.IP: _ip,
    ListKind.DEVICE_ID: _matching(_DEVICE_ID, "a device id: 1 to 64 letters, digits, '_', '.', ':' or '-'"),
    ListKind.CARD_BIN: _matching(_CARD_BIN, "a card BIN: the number's first 6 to 8 digits"),
    ListKind.COUNTRY: _matching(_COUNTRY, "a two-letter ISO 3166-1 country code, such as FR", upper=True),
}


def list_item(kind: ListKind, value: str) -> str:
    """`value` as a list of `kind` stores and compares it, or ValueError saying what it must be."""
    return _NORMALIZERS[kind](value)
