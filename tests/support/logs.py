"""Bastion's JSON log records, read back from what a process wrote."""

import json
from collections.abc import Iterable
from typing import Any


def log_records(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Every line that is a JSON record (they start with `{`), parsed; other lines (an `error:`
    line, uvicorn's before logging is set up, a short console form) are skipped."""
    return [json.loads(line) for line in lines if line.startswith("{")]
