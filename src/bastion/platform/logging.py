"""JSON logs through structlog, with a redaction step (`bastion.platform.redaction`)
that every record passes last, rendered exceptions included; and their short form for a
terminal (`console_line`)."""

import json
import logging
import os
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from bastion.platform.redaction import SECRET_MASK, is_sensitive_key, redact_text, redact_value

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def _redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        event_dict[key] = SECRET_MASK if is_sensitive_key(key) else redact_value(event_dict[key])
    return event_dict


def _add_request_id(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    request_id = request_id_var.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def _add_process_id(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # Several processes share a port (`--workers`) and a log directory: which one said it.
    event_dict.setdefault("pid", os.getpid())
    return event_dict


_shared_processors: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    _add_request_id,
    _add_process_id,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(level: str = "info", stream: Any = None, *, log_file: Path | None = None) -> None:
    """Route structlog and the standard library (uvicorn, asyncio) through one redacting JSON
    renderer, to stderr and, given `log_file`, appended to that file too."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact,
            structlog.processors.JSONRenderer(),
        ],
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = handlers
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


def bind_log_fields(**fields: object) -> None:
    """Add `fields` to every record logged from the current context on (the current asyncio
    task and the tasks it starts), records of the standard library's loggers included."""
    structlog.contextvars.bind_contextvars(**fields)


def console_line(process: str, line: str) -> str | None:
    """A line of `process`'s stderr as a terminal shows it: a record of level warning or above in
    short form (`12:01:02 vault WARNING event key=value`, its traceback below), None for a record
    below warning or a blank line; anything else (an `error:` line, the traceback of a crash
    before logging started) as it is, after the process's name. Redacted like the JSON logs."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return f"{process}: {redact_text(line.rstrip())}"
    # A level this module does not know is shown: hiding an unknown record could hide an error.
    level = str(record.pop("level", "")).upper()
    if logging.getLevelNamesMapping().get(level, logging.CRITICAL) < logging.WARNING:
        return None
    fields = _redact(None, "", record)
    moment = _local_time(fields.pop("timestamp", None))
    event = fields.pop("event", "")
    exception = fields.pop("exception", None)
    fields.pop("logger", None)
    fields.pop("pid", None)
    pairs = (f"{key}={_console_value(value)}" for key, value in fields.items())
    text = " ".join((moment, process, level, str(event), *pairs))
    return text if exception is None else f"{text}\n{exception}"


def _local_time(timestamp: object) -> str:
    try:
        moment = datetime.fromisoformat(str(timestamp)).astimezone()
    except ValueError:
        moment = datetime.now().astimezone()
    return moment.strftime("%H:%M:%S")


def _console_value(value: object) -> str:
    # Bare when unambiguous; quoted (JSON) when it holds spaces, is empty or is not a string.
    if isinstance(value, str) and value and not any(char.isspace() or char == '"' for char in value):
        return value
    return json.dumps(value)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
