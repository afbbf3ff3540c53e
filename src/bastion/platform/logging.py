"""JSON logs through structlog, with a redaction step that every record passes last.

Redacted wherever they appear, in values, keys' values and rendered exceptions: card
numbers (Luhn-valid runs of 12-19 digits, also split by spaces or dashes), CVC-like
and password fields, Bastion secrets (`sk_`, `pk_`, `rk_`, `whsec_`) and
Authorization header values.
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

_PAN_CANDIDATE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){11,18}(?![0-9])")
_API_SECRET = re.compile(r"\b(?:sk|pk|rk)_(?:test|live)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9+/=_-]+")
_AUTHORIZATION = re.compile(r"(?i)(authorization['\"]?\s*[:=,]\s*['\"]?)(?:(?:bearer|basic)\s+)?[^'\"\s,}]+")
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


def _mask_pan(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return PAN_MASK if luhn_valid(digits) else match.group(0)


def redact_text(value: str) -> str:
    value = _PAN_CANDIDATE.sub(_mask_pan, value)
    value = _API_SECRET.sub(SECRET_MASK, value)
    value = _AUTHORIZATION.sub(lambda match: match.group(1) + SECRET_MASK, value)
    return _SENSITIVE_PAIR.sub(lambda match: match.group(1) + SECRET_MASK, value)


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: SECRET_MASK if _SENSITIVE_KEY.search(str(key)) else redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
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
        processors=[*_shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
