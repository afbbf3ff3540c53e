"""An ASGI app of a test's own (a processor, a webhook receiver) served by uvicorn on 127.0.0.1."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import uvicorn

from tests.support.postgres import free_port

SERVER_START_TIMEOUT_S = 10.0
SERVER_STOP_TIMEOUT_S = 10.0


async def request_body(receive: Any) -> bytes:
    """The whole body of an ASGI app's request, however many messages it comes in."""
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


def _server(app: Any, port: int, **tls: Any) -> uvicorn.Server:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1, **tls
    )
    return uvicorn.Server(config)


@contextmanager
def serving(app: Any, *, name: str, port: int | None = None, **tls: Any) -> Iterator[int]:
    """`app` on 127.0.0.1:`port` (a free one by default; with `tls`, uvicorn's ssl_* options),
    from a thread of its own; yields the port."""
    port = port or free_port()
    server = _server(app, port, **tls)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        assert thread.is_alive(), f"{name} stopped"
        assert time.monotonic() < deadline, f"{name} did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(SERVER_STOP_TIMEOUT_S)


@asynccontextmanager
async def serving_in_loop(app: Any, *, name: str) -> AsyncIterator[int]:
    """`app` on a free port of 127.0.0.1, in the caller's event loop (an app that shares the
    test's asyncio objects); yields the port."""
    port = free_port()
    server = _server(app, port)
    running = asyncio.create_task(server.serve())
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        assert not running.done(), f"{name} stopped"
        assert time.monotonic() < deadline, f"{name} did not start"
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(running, SERVER_STOP_TIMEOUT_S)
