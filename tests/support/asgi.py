"""An ASGI app of a test's own (a processor, a webhook receiver) served by uvicorn on 127.0.0.1."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.support.postgres import free_port

SERVER_START_TIMEOUT_S = 10.0
SERVER_STOP_TIMEOUT_S = 10.0


@contextmanager
def serving(app: Any, *, name: str, **tls: Any) -> Iterator[int]:
    """`app` on a free port of 127.0.0.1 (with `tls`, uvicorn's ssl_* options), from a thread of
    its own; yields the port."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1, **tls
    )
    server = uvicorn.Server(config)
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
