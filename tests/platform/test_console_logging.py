"""The terminal of `bastion serve`: a process's JSON records of level warning and above in
short form, redacted like the JSON logs; records below warning left to the log files; what is
not a record (an `error:` line, a crash's traceback) shown as it is, after the process's name."""

import json
from datetime import UTC, datetime

import pytest

from bastion.platform.logging import console_line
from bastion.platform.redaction import PAN_MASK, SECRET_MASK

_CARD = "4242 4242 4242 4242"
_SECRET = "sk_live_" + "a1B2c3D4" * 4
_MOMENT = datetime(2026, 12, 5, 12, 1, 2, tzinfo=UTC)


def _record(**fields: object) -> str:
    return json.dumps({"logger": "tests.console", "timestamp": _MOMENT.isoformat(), **fields})


def _local_time() -> str:
    return _MOMENT.astimezone().strftime("%H:%M:%S")


@pytest.mark.parametrize("level", ["debug", "info"])
def test_a_record_below_warning_is_not_shown(level: str) -> None:
    assert console_line("api", _record(event="request", level=level, status=200)) is None


@pytest.mark.parametrize("level", ["warning", "error", "critical"])
def test_a_warning_or_an_error_is_one_short_line(level: str) -> None:
    line = _record(event="readiness_failed", level=level, error_type="ConnectionRefusedError", retry_in_s=1.5)
    assert console_line("vault", line) == (
        f"{_local_time()} vault {level.upper()} readiness_failed error_type=ConnectionRefusedError retry_in_s=1.5"
    )


def test_values_with_spaces_quotes_or_structure_are_quoted_as_json() -> None:
    line = _record(event="vault_process_exited", level="error", reason="went away", quoted='say "no"', codes=[1, -15])
    assert console_line("vault", line) == (
        f'{_local_time()} vault ERROR vault_process_exited reason="went away" quoted="say \\"no\\"" codes=[1, -15]'
    )


def test_the_traceback_follows_its_line() -> None:
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom'
    line = _record(event="worker_duty_failed", level="error", duty="audit_sealer", exception=traceback)
    assert console_line("worker", line) == f"{_local_time()} worker ERROR worker_duty_failed duty=audit_sealer\n{traceback}"


def test_the_terminal_is_redacted_like_the_json_logs() -> None:
    line = _record(
        event=f"declined {_CARD}",
        level="warning",
        path=f"/v1/customers/{_CARD.replace(' ', '')}",
        password="hunter2",
        note=f"Authorization: Bearer {_SECRET}",
        exception=f"ValueError: card {_CARD} for {_SECRET}",
    )
    shown = console_line("api", line)
    assert shown is not None
    for leaked in (_CARD, _CARD.replace(" ", ""), _SECRET, "hunter2"):
        assert leaked not in shown
    assert f"declined {PAN_MASK}" in shown
    assert f"password={SECRET_MASK}" in shown


def test_a_line_that_is_not_a_record_is_shown_after_the_process_name_and_redacted() -> None:
    assert console_line("worker", "error: the worker needs BASTION_DB_POOL_SIZE of at least 2\n") == (
        "worker: error: the worker needs BASTION_DB_POOL_SIZE of at least 2"
    )
    assert console_line("api", f"ValueError: card {_CARD}\n") == f"api: ValueError: card {PAN_MASK}"
    assert console_line("api", "[1, 2]\n") == "api: [1, 2]"


def test_a_blank_line_is_not_shown() -> None:
    assert console_line("api", "\n") is None
