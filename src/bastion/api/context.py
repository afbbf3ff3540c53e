"""What every authenticated route receives: who is calling, and the unit of work.

`Authorized(scope)` is the only way a route gets a `RequestContext`, so a route without
it cannot touch tenant data; `bastion.api.app` refuses to start if a route has neither
a scope nor a place on the public list.
"""

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import httpx
import orjson
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client.registry import Collector

from bastion.api.authentication import Authenticator
from bastion.connectors import CredentialsSealer
from bastion.kernel.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from bastion.kernel.ids import new_id
from bastion.merchants import Principal
from bastion.payments.directory import ConnectorDirectory
from bastion.platform.db import Actor, Database, Tenant, UnitOfWork
from bastion.platform.http.client_ip import client_ip
from bastion.platform.http.errors import BodyInvalidJson
from bastion.platform.http.ratelimit import RateLimiter
from bastion.platform.http.responses import JsonResponse
from bastion.platform.idempotency import Answer, PhasedCommands, Phases, State, key_in_use, repository, stored_answer
from bastion.platform.logging import request_id_var
from bastion.platform.settings import Settings
from bastion.platform.vault_client import VaultClient
from bastion.risk import Velocity
from bastion.webhooks import EndpointSecrets

IDEMPOTENCY_KEY_LENGTH_MAX = 255
DEVICE_ID_LENGTH_MAX = 128

_bearer = HTTPBearer(auto_error=False, description="A secret API key: `Authorization: Bearer sk_test_...`")


@dataclass(frozen=True, slots=True)
class Services:
    """The concrete parts the API needs, wired once in `bastion.bootstrap`."""

    settings: Settings
    database: Database
    authenticator: Authenticator
    rate_limiter: RateLimiter
    vault: VaultClient
    commands: PhasedCommands
    # What a scraper presents to `/metrics` (`secrets/metrics.token`).
    metrics_token: bytes
    # The connector of each attempt: the sandbox acquirer's, or one for a merchant's account.
    connectors: ConnectorDirectory
    # Where the risk engine's velocity counters are; outcomes of attempts are counted there.
    velocity: Velocity
    # Seals and opens webhook endpoints' signing secrets.
    webhook_secrets: EndpointSecrets
    # Seals and opens connector accounts' credentials (envelope encryption, ADR 26).
    connector_credentials: CredentialsSealer
    # The demo shop merchant's test keys (`secrets/demo.json`), when the demo runs.
    demo_keys: Mapping[str, str] | None = None
    # Clients of processors the connectors hold (the sandbox acquirer's), closed at shutdown.
    outbound: tuple[httpx.AsyncClient, ...] = ()
    # The fraud models' metrics (loads, scores, drift), shown at `/metrics` with the API's own.
    model_metrics: tuple[Collector, ...] = ()


# The answer is a context's resource (a TypedDict, ADR 11).
Command = Callable[[UnitOfWork], Awaitable[Mapping[str, object]]]
Kept = Callable[[Mapping[str, object]], Mapping[str, object]]


def _lock_id(tenant: Tenant, key: str) -> int:
    digest = hashlib.sha256(f"{tenant.merchant_id}:{tenant.livemode}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _fingerprint(request: Request) -> str:
    body = await request.body()
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        # FastAPI's parser also takes NaN and Infinity, which are not JSON (RFC 8259).
        raise BodyInvalidJson("The request body is not valid JSON") from None
    return hashlib.sha256(b"\n".join([request.method.encode(), request.url.path.encode(), canonical])).hexdigest()


@dataclass(frozen=True, slots=True)
class RequestContext:
    request: Request
    services: Services
    principal: Principal
    actor: Actor

    @property
    def tenant(self) -> Tenant:
        return Tenant(merchant_id=self.principal.merchant_id, livemode=self.principal.livemode)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[UnitOfWork]:
        async with self.services.database.unit_of_work(self.tenant, self.actor) as uow:
            yield uow

    def _idempotency_key(self) -> str | None:
        key = self.request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= IDEMPOTENCY_KEY_LENGTH_MAX:
            raise InvalidRequest(f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LENGTH_MAX} characters", param="Idempotency-Key")
        return key

    async def command(self, operation: Command, *, kept: Kept | None = None) -> JsonResponse:
        """Run a state change in one transaction, with Stripe's idempotency semantics:
        a replay returns the stored response with `Idempotent-Replayed: true`, a
        concurrent duplicate gets 409, a reused key with another request gets 400.
        `kept`: what of the answer is stored for replays, when it holds what must be shown once
        (a signing secret) and not kept in clear."""
        key = self._idempotency_key()
        if key is None:
            async with self.services.database.unit_of_work(self.tenant, self.actor) as uow:
                return JsonResponse(await operation(uow))
        fingerprint = await _fingerprint(self.request)
        async with self.services.database.unit_of_work(self.tenant, self.actor, try_lock_id=_lock_id(self.tenant, key)) as uow:
            if not uow.holds_lock:
                raise key_in_use()
            # A statement after the lock: its snapshot sees whatever the previous holder committed.
            stored = await repository.stored(uow.connection, uow.tenant, key)
            replayed = None if stored is None else stored_answer(stored, fingerprint)
            if replayed is not None:
                return _answer_response(replayed, key)
            answer = await operation(uow)
            body = orjson.dumps(answer)
            stored_body = body if kept is None else orjson.dumps(kept(answer))
            await repository.store_response(
                uow.connection, uow.tenant, key=key, fingerprint=fingerprint, status_code=200, response_body=stored_body.decode()
            )
            return JsonResponse(body, headers={"Idempotency-Key": key})

    async def phased(self, phases: Phases, start: Callable[[UnitOfWork], Awaitable[State]]) -> JsonResponse:
        """Run a command that calls outside Bastion in phases (`bastion.platform.idempotency.runner`),
        with the same idempotency semantics as `command`. Without an Idempotency-Key the request
        id serves as one, so that the janitor can still finish the command if it is cut short."""
        given = self._idempotency_key()
        key = given or self.actor.request_id or new_id("req")
        answer = await self.services.commands.run(
            self.tenant, self.actor, key=key, fingerprint=await _fingerprint(self.request), phases=phases, start=start
        )
        return _answer_response(answer, given)


def _answer_response(answer: Answer, key: str | None) -> JsonResponse:
    """The stored or fresh answer, naming the client's `Idempotency-Key` as Stripe's answers do
    (the SDKs read it back: `last_response.idempotency_key`)."""
    headers = {} if key is None else {"Idempotency-Key": key}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JsonResponse(answer.body, status_code=answer.status_code, headers=headers)


class Authorized:
    """Dependency: authenticate the Bearer secret key, require `scope`, apply the rate limit."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    async def __call__(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> RequestContext:
        services: Services = request.app.state.services
        if credentials is None:
            raise AuthenticationFailed("No API key provided: send `Authorization: Bearer sk_test_...`")
        principal = await services.authenticator.principal(credentials.credentials)
        if self.scope not in principal.scopes:
            raise PermissionDenied(f"This API key lacks the scope {self.scope!r} required by this request")
        services.rate_limiter.check(principal.key_id)
        device_id = request.headers.get("Bastion-Device-Id")
        if device_id is not None and len(device_id) > DEVICE_ID_LENGTH_MAX:
            raise InvalidRequest(
                f"Bastion-Device-Id must be at most {DEVICE_ID_LENGTH_MAX} characters", param="Bastion-Device-Id"
            )
        actor = Actor(
            id=principal.key_id,
            ip_address=client_ip(request),
            device_id=device_id,
            request_id=request_id_var.get(),
        )
        return RequestContext(request=request, services=services, principal=principal, actor=actor)


def scope_of(dependency: object) -> str | None:
    return dependency.scope if isinstance(dependency, Authorized) else None
