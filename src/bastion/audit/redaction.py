"""What an audit row may keep of a resource's state: secrets are replaced, never stored."""

from typing import Any

REDACTED = "[redacted]"
_SECRET_KEY_PARTS = ("secret", "password", "token", "cvc", "cvv", "card_number", "pan", "authorization")


def is_secret_field(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_KEY_PARTS)


def redact_state(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: REDACTED if is_secret_field(str(key)) else redact_state(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_state(item) for item in value]
    return value
