"""A body over 64 KiB is read only after the bearer key is checked, and only so many at once
(issue 12, item 10): nobody without a key can make the API buffer megabytes."""

import asyncio
import secrets
import socket
import string
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import pytest
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from bastion.kernel.errors import AuthenticationFailed
from bastion.platform.http.middleware import LARGE_BODIES_AT_ONCE, LARGE_BODY_BYTES, EdgeMiddleware
from bastion.platform.metrics import HttpMetrics
from tests.support import postgres
from tests.support.platform import Credentials

TEN_MIB = 10 * 1_048_576
SENT_BEFORE_WAITING = 2 * LARGE_BODY_BYTES
ANSWER_WITHIN_S = 5.0
CHUNK = b"x" * 16_384
CHUNKS_OFFERED_MAX = 200


def _unknown_key() -> str:
    return "sk_test_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))


def _status_before_the_body_is_sent(url: str, path: str, authorization: str | None, length: int) -> str:
    """Send a request's headers and its first 128 KiB of `length`, then read the answer
    without sending the rest: a server that buffers the body never answers."""
    parts = urlsplit(url)
    lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json", f"Content-Length: {length}"]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    with socket.create_connection((parts.hostname, parts.port), timeout=ANSWER_WITHIN_S) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        connection.sendall(b"[" + b" " * (SENT_BEFORE_WAITING - 1))
        status_line = connection.recv(4096).split(b"\r\n", 1)[0]
    return status_line.decode()


@pytest.mark.processes
def test_an_unauthenticated_large_body_is_refused_before_it_is_read(
    test_database: postgres.TestDatabase, merchant: Credentials
) -> None:
    with postgres.running_api_process(test_database) as api:
        for authorization in (None, f"Bearer {_unknown_key()}", "Basic dXNlcjpwYXNz"):
            for path in ("/v1/customers", "/v1/ledger/entries/batch"):
                assert _status_before_the_body_is_sent(api.url, path, authorization, TEN_MIB) == "HTTP/1.1 401 Unauthorized"
        # With a valid key the body is read, up to the route's limit: beyond it, 413 at once.
        assert _status_before_the_body_is_sent(api.url, "/v1/customers", f"Bearer {merchant.secret}", TEN_MIB) == (
            "HTTP/1.1 413 Request Entity Too Large"
        )


def _scope(headers: dict[str, str]) -> Scope:
    encoded = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return {"type": "http", "method": "POST", "path": "/v1/customers", "query_string": b"", "headers": encoded}


async def _refuse(_headers: Headers) -> None:
    raise AuthenticationFailed("Invalid API key provided")


async def _echo_size(scope: Scope, receive: Receive, send: Send) -> None:
    size = 0
    more = True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def _middleware(authenticate: Callable[[Headers], Awaitable[None]] | None) -> EdgeMiddleware:
    return EdgeMiddleware(
        _echo_size, max_body_bytes=TEN_MIB, large_body_paths={}, metrics=HttpMetrics(), authenticate=authenticate
    )


async def test_a_body_that_grows_past_the_threshold_unannounced_is_checked_then() -> None:
    """Chunked, with no Content-Length: the key is checked once 64 KiB have come in."""
    offered = 0

    async def receive() -> Message:
        nonlocal offered
        offered += 1
        return {"type": "http.request", "body": CHUNK, "more_body": offered < CHUNKS_OFFERED_MAX}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await _middleware(_refuse)(_scope({"transfer-encoding": "chunked"}), receive, send)
    assert sent[0]["status"] == 401
    assert offered * len(CHUNK) <= LARGE_BODY_BYTES + len(CHUNK), "read no further than the threshold"

    offered = 0
    sent.clear()
    await _middleware(None)(_scope({"transfer-encoding": "chunked"}), receive, send)
    assert (sent[0]["status"], sent[1]["body"]) == (200, str(CHUNKS_OFFERED_MAX * len(CHUNK)).encode())


async def test_only_so_many_large_bodies_are_read_at_once() -> None:
    middleware = _middleware(None)
    release = asyncio.Event()

    async def slow_receive() -> Message:
        await release.wait()
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def ignore(_message: Message) -> None:
        return None

    large = _scope({"content-length": str(LARGE_BODY_BYTES + 1)})
    reading = [asyncio.create_task(middleware(large, slow_receive, ignore)) for _ in range(LARGE_BODIES_AT_ONCE)]
    await asyncio.sleep(0)
    refused: list[Message] = []

    async def record(message: Message) -> None:
        refused.append(message)

    await middleware(large, slow_receive, record)
    assert refused[0]["status"] == 429
    assert b"too_many_large_requests" in refused[1]["body"]
    # A small body is not held up by the large ones.
    small: list[Message] = []

    async def small_receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def record_small(message: Message) -> None:
        small.append(message)

    await middleware(_scope({"content-length": "2"}), small_receive, record_small)
    assert small[0]["status"] == 200
    release.set()
    await asyncio.gather(*reading)
