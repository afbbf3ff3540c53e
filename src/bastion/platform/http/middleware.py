"""The edge of every HTTP request, as one pure ASGI middleware (no per-request task
overhead): request id, body size limit, authentication before a large body, NUL refusal,
security headers, metrics and an access log."""

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.kernel.errors import BastionError, BodyTooLarge, InvalidRequest
from bastion.kernel.ids import new_id
from bastion.platform.http.errors import TooManyLargeRequests, internal_error_response, response_for
from bastion.platform.logging import get_logger, request_id_var
from bastion.platform.metrics import HttpMetrics

_log = get_logger("bastion.access")

_API_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]
_API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The interactive docs page runs the Swagger UI bundle served from our own origin.
_DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# PostgreSQL text and jsonb cannot hold U+0000, so no field accepts it: refused here for
# every route at once, not as a database error. In a JSON body it can only be the escape
# \u0000 after an even number of backslashes (an odd number escapes the backslash itself).
_JSON_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
# A body larger than this is read only once the request's credentials are checked, so that
# nobody without a key can make the server buffer megabytes; and only so many such bodies
# are read at once by each process.
LARGE_BODY_BYTES = 65_536
# The Stripe API version a Stripe SDK names (`Stripe-Version`): recorded in the access log, as
# much of it as a version spells; answers follow Bastion's own version.
STRIPE_VERSION_LENGTH_MAX = 64
LARGE_BODIES_AT_ONCE = 8
# Checks the request's credentials from its headers; raises AuthenticationFailed.
Authenticate = Callable[[Headers], Awaitable[None]]


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        large_body_paths: dict[str, int],
        metrics: HttpMetrics,
        authenticate: Authenticate | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Exact paths allowed a larger body than the rest, with their own limit.
        self.large_body_paths = large_body_paths
        self.metrics = metrics
        # None where every body fits under LARGE_BODY_BYTES or the listener authenticates the
        # connection itself (the vault's: its browser origin's limit, its mutual TLS).
        self.authenticate = authenticate
        self._large_bodies = asyncio.Semaphore(LARGE_BODIES_AT_ONCE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        request_id = new_id("req")
        token = request_id_var.set(request_id)
        status = 500
        response_started = False
        csp = _DOCS_CSP if scope["path"].startswith("/docs") else _API_CSP

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = list(message.get("headers", []))
                # A route's own header wins over the default (bastion.js may be loaded
                # cross-origin); a page with its own policy is meant to be framed where its
                # frame-ancestors says, which replaces X-Frame-Options.
                own = {name.lower() for name, _ in headers}
                if b"content-security-policy" in own:
                    own.add(b"x-frame-options")
                defaults = [*_API_HEADERS, (b"content-security-policy", csp)]
                headers.extend(header for header in defaults if header[0] not in own)
                headers.append((b"request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            limit = self.large_body_paths.get(scope["path"], self.max_body_bytes)
            try:
                body = await self._read_body(headers, receive, limit)
            except BastionError as refused:  # a large body not admitted: answered without reading it
                await response_for(refused)(scope, receive, send_with_headers)
                return
            if body is None:
                await response_for(BodyTooLarge(f"The request body exceeds {limit} bytes"))(scope, receive, send_with_headers)
            elif _carries_nul(scope, body):
                await response_for(InvalidRequest("Text must not contain the NUL character (\\u0000)"))(
                    scope, receive, send_with_headers
                )
            else:
                await self.app(scope, replay_body(body, receive), send_with_headers)
        except Exception:
            # Answered here, not by Starlette's outermost handler, so that the 500 still
            # carries the security headers and the request id (in the log line too).
            _log.exception("unhandled_exception", method=scope["method"], path=scope["path"])
            if response_started:
                raise
            await internal_error_response()(scope, receive, send_with_headers)
        finally:
            duration_s = time.perf_counter() - started
            route = _route_template(scope)
            self.metrics.observe(scope["method"], route, status, duration_s)
            _log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                route=route,
                status=status,
                duration_ms=round(duration_s * 1000, 2),
                **_stripe_version(headers),
            )
            request_id_var.reset(token)

    async def _read_body(self, headers: Headers, receive: Receive, limit: int) -> bytes | None:
        """The whole body, or None once it passes the limit (read no further). Past
        LARGE_BODY_BYTES (announced by Content-Length, or reached while reading), the
        credentials are checked first and a slot among the large bodies taken: their refusal
        (a BastionError) is raised before anything more is read."""
        announced = headers.get("content-length", "")
        size = int(announced) if announced.isdigit() else None
        large = size is not None and size > LARGE_BODY_BYTES
        if large:
            await self._admit_large(headers)
        try:
            if size is not None and size > limit:
                return None
            return await self._read_chunks(receive, limit, None if large else headers)
        finally:
            if large:
                self._large_bodies.release()

    async def _admit_large(self, headers: Headers) -> None:
        if self.authenticate is not None:
            await self.authenticate(headers)
        if self._large_bodies.locked():
            raise TooManyLargeRequests(
                f"Too many requests with bodies over {LARGE_BODY_BYTES} bytes at once; retry shortly.", retry_after_s=1
            )
        await self._large_bodies.acquire()

    async def _read_chunks(self, receive: Receive, limit: int, unannounced: Headers | None) -> bytes | None:
        """`unannounced`: the headers of a body whose size was not announced as large; it is
        admitted as large when it grows past LARGE_BODY_BYTES."""
        chunks: list[bytes] = []
        size = 0
        admitted = False
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    break
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    return None
                if unannounced is not None and not admitted and size > LARGE_BODY_BYTES:
                    await self._admit_large(unannounced)
                    admitted = True
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        finally:
            if admitted:
                self._large_bodies.release()
        return b"".join(chunks)


def _stripe_version(headers: Headers) -> dict[str, str]:
    version = headers.get("stripe-version")
    return {} if version is None else {"stripe_version": version[:STRIPE_VERSION_LENGTH_MAX]}


def _carries_nul(scope: Scope, body: bytes) -> bool:
    return "\x00" in scope["path"] or b"%00" in scope["query_string"] or _JSON_NUL_ESCAPE.search(body) is not None


def replay_body(body: bytes, receive: Receive) -> Receive:
    """The body already read, then the connection's own messages: a streaming response listens
    for `http.disconnect` while it sends, and stops when one comes, so only the client's own
    disconnect may say so."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
