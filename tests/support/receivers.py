"""Webhook receivers for tests: a real HTTP server on 127.0.0.1 (uvicorn, in the
caller's event loop) that records every request and answers each path as told."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.asgi import serving_in_loop


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


@dataclass
class Receiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    # Per path: replies used one per request, in order; then `default`.
    scripts: dict[str, list[Reply]] = field(default_factory=dict)
    default: Reply = field(default_factory=Reply)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def at(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    async def wait_for(self, count: int, *, path: str | None = None, timeout_s: float = 10.0) -> list[Received]:
        """The requests so far (to `path`), once there are at least `count`; fails after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            seen = self.received if path is None else self.at(path)
            if len(seen) >= count:
                return list(seen)
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{len(seen)} of {count} requests arrived within {timeout_s} s"
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), timeout=remaining)
            except TimeoutError:
                continue

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        path = scope["path"]
        headers = {name.decode(): value.decode() for name, value in scope["headers"]}
        self.received.append(Received(path=path, headers=headers, body=b"".join(chunks), at=time.monotonic()))
        self.arrived.set()
        script = self.scripts.get(path)
        reply = script.pop(0) if script else self.default
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(name.encode(), value.encode()) for name, value in reply.headers],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with serving_in_loop(receiver, name="webhook receiver") as port:
        receiver.url = f"http://127.0.0.1:{port}"
        yield receiver
