"""No card number, secret or bearer value reaches a log line: through a real `bastion api`
process and its captured stderr, and through an exception logged in process."""

import io
import logging
import secrets
import string
import time
from collections.abc import Iterator

import httpx
import pytest
import structlog

from bastion.platform.logging import configure_logging, get_logger
from bastion.platform.redaction import PAN_MASK
from tests.support import postgres
from tests.support.logs import log_records
from tests.support.platform import Credentials, Platform

# Public test card numbers (Stripe's documentation), never real ones.
CARDS = ["4242424242424242", "4000056655665556", "5555555555554444", "378282246310005", "6011111111111117", "3056930009020004"]
MAX_BODY_BYTES = 4_096
LOG_WAIT_S = 10.0


def _written_forms(number: str) -> list[str]:
    groups = [number[start : start + 4] for start in range(0, len(number), 4)]
    return [number, " ".join(groups), "-".join(groups)]


def _random_secret(prefix: str) -> str:
    return prefix + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))


def _wait_for_request_logs(api: postgres.ApiProcess, request_ids: list[str]) -> str:
    """The logs once every request has its line: the access log is written after the response."""
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        text = api.logs()
        logged = {record.get("request_id") for record in log_records(text.splitlines())}
        missing = [request_id for request_id in request_ids if request_id not in logged]
        if not missing:
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"no log line for requests {missing}; logs:\n{text[-3000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
async def redaction_merchant(platform: Platform) -> Credentials:
    return await platform.merchant()


@pytest.mark.processes
def test_api_logs_hold_no_card_number_secret_or_bearer_value(
    test_database: postgres.TestDatabase, redaction_merchant: Credentials
) -> None:
    bogus_live_key = _random_secret("sk_live_")
    bogus_bearer = _random_secret("opaque-")
    sent_secrets = [redaction_merchant.secret, redaction_merchant.publishable, bogus_live_key, bogus_bearer]
    env = {"BASTION_MAX_BODY_BYTES": str(MAX_BODY_BYTES), "BASTION_LOG_LEVEL": "debug"}
    with (
        postgres.running_api_process(test_database, env) as api,
        httpx.Client(base_url=api.url, headers=redaction_merchant.headers, timeout=10) as client,
    ):
        responses = [
            # Card numbers in free text and in metadata: refused (400, naming the field).
            client.post(
                "/v1/customers",
                json={
                    "description": f"paid with {_written_forms(CARDS[0])[1]}",
                    "metadata": {"card": CARDS[1], "backup": _written_forms(CARDS[2])[2], CARDS[3]: "as a key"},
                },
            ),
            # A card number in a header: the 200 path.
            client.post("/v1/customers", json={"name": "Ada"}, headers={"Idempotency-Key": f"order-{CARDS[4]}"}),
            # An unknown `cvc` field: the 400 path.
            client.post("/v1/customers", json={"cvc": "123", "description": CARDS[5]}),
            # Malformed JSON around a card number: the parser's 400 path.
            client.post(
                "/v1/customers", content=f'{{"description": "{CARDS[0]}"'.encode(), headers={"Content-Type": "application/json"}
            ),
            # Card numbers in the query and in the path (the path is logged).
            client.get("/v1/customers", params={"email": CARDS[0]}),
            client.get("/v1/customers", params={"card": _written_forms(CARDS[2])[1]}),
            client.get(f"/v1/customers/{CARDS[1]}"),
            client.get(f"/v1/no-such-route/{_written_forms(CARDS[3])[2]}"),
            # Bogus credentials: the 401 path.
            client.get("/v1/customers", headers={"Authorization": f"Bearer {bogus_live_key}"}),
            client.get("/v1/customers", headers={"Authorization": f"Bearer {bogus_bearer}"}),
            # Inputs that used to fail as 500s with the SQL parameters (card numbers included) in
            # the logged traceback: a NUL character PostgreSQL cannot store, and NaN, which
            # FastAPI's parser takes but the idempotency fingerprint does not.
            client.post("/v1/customers", json={"description": f"{CARDS[0]} \u0000"}),
            client.get("/v1/customers", params={"email": f"{CARDS[1]}\u0000"}),
            client.post(
                "/v1/customers",
                content=f'{{"description": NaN, "description": "{CARDS[2]}"}}'.encode(),
                headers={"Content-Type": "application/json", "Idempotency-Key": f"retry-{CARDS[3]}"},
            ),
            # A body over the limit, full of card numbers: the 413 path.
            client.post("/v1/customers", json={"description": " ".join(CARDS * 100)}),
        ]
        statuses = [response.status_code for response in responses]
        expected_statuses = [400, 200, 400, 400, 200, 400, 404, 404, 401, 401, 400, 400, 400, 413]
        assert statuses == expected_statuses, [response.text for response in responses]
        logs = _wait_for_request_logs(api, [response.headers["Request-Id"] for response in responses])

    for number in CARDS:
        for form in _written_forms(number):
            assert form not in logs, f"card number {form} in the logs"
    for secret in sent_secrets:
        assert secret not in logs
        assert secret[-12:] not in logs
    # The redactor really ran on what was logged: the card numbers in the paths are masked.
    assert f"/v1/customers/{PAN_MASK}" in logs
    assert f"/v1/no-such-route/{PAN_MASK}" in logs


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """configure_logging() on a private stream, and the process' logging as it was afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_structlog = structlog.get_config()
    uvicorn_loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved_uvicorn = [(logger.handlers[:], logger.propagate, logger.disabled) for logger in uvicorn_loggers]
    stream = io.StringIO()
    configure_logging("info", stream)
    yield stream
    root.handlers = saved_handlers
    root.setLevel(saved_level)
    structlog.configure(**saved_structlog)
    for logger, (handlers, propagate, disabled) in zip(uvicorn_loggers, saved_uvicorn, strict=True):
        logger.handlers, logger.propagate, logger.disabled = handlers, propagate, disabled


def test_a_logged_exception_renders_a_redacted_traceback(captured_logs: io.StringIO) -> None:
    secret = _random_secret("sk_live_")
    try:
        int(f"declined card {CARDS[0]} ({_written_forms(CARDS[2])[1]}) for key {secret}")
    except ValueError:
        get_logger("tests.redaction").exception("charge_failed", card=CARDS[1])
    records = log_records(captured_logs.getvalue().splitlines())
    assert len(records) == 1, captured_logs.getvalue()
    record = records[0]
    traceback = str(record["exception"])
    assert "Traceback (most recent call last)" in traceback
    assert f"declined card {PAN_MASK} ({PAN_MASK}) for key [REDACTED]" in traceback
    assert record["card"] == PAN_MASK
    rendered = captured_logs.getvalue()
    for number in CARDS[:3]:
        for form in _written_forms(number):
            assert form not in rendered
    assert secret not in rendered
