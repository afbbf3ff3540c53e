"""JSON logs through structlog, with a redaction step that every record passes last.

Redacted wherever they appear, in keys, values and rendered exceptions: card numbers
(Luhn-valid runs of 12-19 digits, also split by spaces or dashes, also beside other
numbers), CVC-like and password fields, Bastion secrets (`sk_`, `pk_`, `rk_`, `whsec_`),
Authorization header values and Bearer tokens.
"""

import logging
import re
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

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


def _holds_pan(groups: list[str]) -> bool:
    for start in range(len(groups)):
        digits = ""
        for group in groups[start:]:
            digits += group
            if len(digits) > PAN_LENGTH_MAX:
                break
            if len(digits) >= PAN_LENGTH_MIN and luhn_valid(digits):
                return True
    return False


def _mask_pan(match: re.Match[str]) -> str:
    run = match.group(0)
    return PAN_MASK if _holds_pan(_DIGIT_SEPARATOR.split(run)) else run


def redact_text(value: str) -> str:
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
            redact_value(key): SECRET_MASK if _SENSITIVE_KEY.search(str(key)) else redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        # A card number logged as a number is still a card number.
        return value if redact_text(str(value)) == str(value) else PAN_MASK
    return redact_text(str(value))


def _redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        event_dict[key] = SECRET_MASK if _SENSITIVE_KEY.search(key) else redact_value(event_dict[key])
    return event_dict


def _add_request_id(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    request_id = request_id_var.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


_shared_processors: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    _add_request_id,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(level: str = "info", stream: Any = None) -> None:
    """Route structlog and the standard library (uvicorn, asyncio) through one redacting JSON renderer."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    structlog.configure(
        # Level first: a record below the level costs no further processing.
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
