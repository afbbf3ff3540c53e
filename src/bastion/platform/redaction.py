"""Redaction of card numbers and secrets, for every place that keeps text: log records
and audit rows alike.

Masked wherever they appear, in keys, values and free text: card numbers (Luhn-valid
runs of 12-19 digits, also split by spaces or dashes, also beside other numbers),
CVC-like and password fields, Bastion secrets (`sk_`, `pk_`, `rk_`, `whsec_`),
Authorization header values and Bearer tokens.
"""

import re
from collections.abc import Iterator
from typing import Any

PAN_MASK = "[REDACTED PAN]"
SECRET_MASK = "[REDACTED]"  # noqa: S105  (the mask, not a secret)

PAN_LENGTH_MIN = 12
PAN_LENGTH_MAX = 19
# Runs of digit groups joined by single spaces or dashes. A card number can sit in such
# a run next to other numbers ("qty 1 4242 4242 4242 4242"), so every window of whole
# groups is checked, not only the run as a whole.
_DIGIT_RUN = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
_DIGIT_SEPARATOR = re.compile(r"[ -]")
# Letters and digits, not `_`, end the look-behind: "token_sk_live_..." is still a secret.
_API_SECRET = re.compile(r"(?<![A-Za-z0-9])(?:(?:sk|pk|rk)_(?:test|live)_[A-Za-z0-9]+|whsec_[A-Za-z0-9+/=_-]+)")
_AUTHORIZATION = re.compile(r"(?i)(authorization['\"]?\s*[:=,]\s*['\"]?)(?:(?:bearer|basic)\s+)?[^'\"\s,}]+")
_BEARER = re.compile(r"(?i)(\bbearer\s+)[^'\"\s,}]+")
_SENSITIVE_PAIR = re.compile(
    r"(?i)(['\"]?\b(?:cvc2?|cvv2?|cvn|csc|password|passwd|secret|api_key|card_number|pan)['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}&]+"
)
_SENSITIVE_KEY = re.compile(r"(?i)cvc|cvv|cvn|csc|password|passwd|secret|authorization|card_number|^pan$|api_key")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_numbers_in(text: str) -> Iterator[str]:
    """The digits of every Luhn-valid 12-19 digit number in `text`, also split by spaces or
    dashes, also beside other numbers: what the redactor masks, and what the PAN scanner
    narrows down to numbers a card network could have issued."""
    for run in _DIGIT_RUN.finditer(text):
        groups = _DIGIT_SEPARATOR.split(run.group(0))
        for start in range(len(groups)):
            digits = ""
            for group in groups[start:]:
                digits += group
                if len(digits) > PAN_LENGTH_MAX:
                    break
                if len(digits) >= PAN_LENGTH_MIN and luhn_valid(digits):
                    yield digits


def _mask_pan(match: re.Match[str]) -> str:
    run = match.group(0)
    return PAN_MASK if any(card_numbers_in(run)) else run


# What every pattern above needs at least: twelve digits joined by single spaces or dashes (a
# card number), or one of their words. Most text has neither (ids, statuses, currencies), and one
# search for them spares the five substitutions, run for every string of every audit row and log.
_MAYBE_SENSITIVE = re.compile(
    r"[0-9](?:[ -]?[0-9]){11}"
    r"|(?i:sk_|pk_|rk_|whsec_|authorization|bearer|cvc|cvv|cvn|csc|password|passwd|secret|api_key|card_number|pan)"
)


def mask_card_numbers(value: str) -> str:
    """`value` with every card number masked, and nothing else: for text meant to be read, such
    as an error's message, which names parameters and may quote what a client sent."""
    return _DIGIT_RUN.sub(_mask_pan, value) if _MAYBE_SENSITIVE.search(value) else value


def redact_text(value: str) -> str:
    return value if _MAYBE_SENSITIVE.search(value) is None else masked(value)


def masked(value: str) -> str:
    """`value` with every card number and secret masked: `redact_text` without its shortcut."""
    # Secrets first: masking digits inside a secret would cut it short and leave its tail.
    value = _API_SECRET.sub(SECRET_MASK, value)
    value = _AUTHORIZATION.sub(lambda match: match.group(1) + SECRET_MASK, value)
    value = _BEARER.sub(lambda match: match.group(1) + SECRET_MASK, value)
    value = _DIGIT_RUN.sub(_mask_pan, value)
    return _SENSITIVE_PAIR.sub(lambda match: match.group(1) + SECRET_MASK, value)


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            redact_value(key): SECRET_MASK if is_sensitive_key(str(key)) else redact_value(item) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        # A card number logged as a number is still a card number.
        return value if redact_text(str(value)) == str(value) else PAN_MASK
    return redact_text(str(value))


def is_sensitive_key(name: str) -> bool:
    """A field whose value is a secret by its name alone (`cvc`, `password`, `authorization`...)."""
    return _SENSITIVE_KEY.search(name) is not None
