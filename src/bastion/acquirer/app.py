"""The sandbox acquirer's HTTP protocol (docs/payments.md, The acquirer's protocol): JSON over
HTTPS, a Bearer secret, an Idempotency-Key on every POST."""

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request

import bastion
from bastion.acquirer import service
from bastion.acquirer.notifications import deliver_due
from bastion.acquirer.schemas import Capture, DisputeEvidence, PaymentCreate, RefundCreate
from bastion.acquirer.service import Acquirer
from bastion.acquirer.settlement import settle
from bastion.kernel.errors import AuthenticationFailed, ProcessorUnavailable
from bastion.platform.http import errors, health
from bastion.platform.http.credentials import bearer_token
from bastion.platform.http.middleware import EdgeMiddleware
from bastion.platform.http.responses import JsonResponse
from bastion.platform.logging import get_logger
from bastion.platform.metrics import HttpMetrics

BODY_BYTES_MAX = 16_384
# How often expired challenges and due notifications are looked for.
DUTIES_INTERVAL_S = 1.0
_log = get_logger("bastion.acquirer")
_KEY = Header(alias="Idempotency-Key", min_length=1, max_length=255)


def _acquirer(request: Request) -> Acquirer:
    acquirer: Acquirer = request.app.state.acquirer
    presented = bearer_token(request.headers.get("authorization"))
    if presented is None or not hmac.compare_digest(presented.encode(), acquirer.api_key.encode()):
        raise AuthenticationFailed("Send the acquirer's secret: `Authorization: Bearer ...`.")
    return acquirer


Authenticated = Annotated[Acquirer, Depends(_acquirer)]
router = APIRouter(prefix="/v1")


async def _once(acquirer: Acquirer, request: Request, key: str, operation: service.Operation) -> JsonResponse:
    fate = acquirer.fate(key)
    if fate is not None:
        await asyncio.sleep(fate.latency_s)
        if fate.fail:
            raise ProcessorUnavailable("Chaos: the acquirer failed before acting.")
    fingerprint = service.fingerprint(request.method, request.url.path, await request.body())
    answer = await service.once(acquirer, key, fingerprint, operation)
    if fate is not None and fate.hang and acquirer.chaos is not None:
        # Done and committed, and answered only after the caller has given up waiting.
        await asyncio.sleep(acquirer.chaos.hang_ms / 1000)
    return JsonResponse(answer)


@router.post("/payments")
async def create_payment(
    acquirer: Authenticated, request: Request, body: PaymentCreate, key: Annotated[str, _KEY]
) -> JsonResponse:
    return await _once(acquirer, request, key, service.create_payment(acquirer, body))


@router.get("/payments")
async def find_payment(
    acquirer: Authenticated,
    merchant: Annotated[str, Query(max_length=64)],
    reference: Annotated[str, Query(max_length=64)],
) -> JsonResponse:
    return JsonResponse(await service.find_payment(acquirer, merchant, reference))


@router.get("/payments/{payment_id}")
async def retrieve_payment(acquirer: Authenticated, payment_id: str) -> JsonResponse:
    return JsonResponse(await service.retrieve_payment(acquirer, payment_id))


@router.post("/payments/{payment_id}/capture")
async def capture_payment(
    acquirer: Authenticated, request: Request, payment_id: str, body: Capture, key: Annotated[str, _KEY]
) -> JsonResponse:
    return await _once(acquirer, request, key, service.capture_payment(payment_id, body))


@router.post("/payments/{payment_id}/void")
async def void_payment(acquirer: Authenticated, request: Request, payment_id: str, key: Annotated[str, _KEY]) -> JsonResponse:
    return await _once(acquirer, request, key, service.void_payment(payment_id))


@router.post("/payments/{payment_id}/refunds")
async def refund_payment(
    acquirer: Authenticated, request: Request, payment_id: str, body: RefundCreate, key: Annotated[str, _KEY]
) -> JsonResponse:
    return await _once(acquirer, request, key, service.refund_payment(payment_id, body))


async def _duties_forever(acquirer: Acquirer) -> None:
    """Expire unanswered challenges, decide disputes in review, settle once a day (the first
    round after midnight UTC) and send due notifications, every `DUTIES_INTERVAL_S`, until
    cancelled; a failed round is logged and retried."""
    settled_on = acquirer.database.clock.now().date()
    while True:
        try:
            await service.expire_challenges(acquirer)
            await service.decide_disputes(acquirer)
            today = acquirer.database.clock.now().date()
            if today > settled_on:
                await settle(acquirer)
                settled_on = today
            await deliver_due(acquirer)
        except Exception:  # noqa: BLE001  (the next round tries again)
            _log.exception("acquirer_duties_failed")
        await asyncio.sleep(DUTIES_INTERVAL_S)


@router.get("/disputes/{dispute_id}")
async def retrieve_dispute(acquirer: Authenticated, dispute_id: str) -> JsonResponse:
    return JsonResponse(await service.retrieve_dispute(acquirer, dispute_id))


@router.post("/disputes/{dispute_id}/evidence")
async def respond_to_dispute(
    acquirer: Authenticated, request: Request, dispute_id: str, body: DisputeEvidence, key: Annotated[str, _KEY]
) -> JsonResponse:
    return await _once(acquirer, request, key, service.respond_to_dispute(dispute_id, body))


@router.post("/disputes/{dispute_id}/accept")
async def accept_dispute(acquirer: Authenticated, request: Request, dispute_id: str, key: Annotated[str, _KEY]) -> JsonResponse:
    return await _once(acquirer, request, key, service.accept_dispute(dispute_id))


def create_app(acquirer: Acquirer) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        delivery = asyncio.create_task(_duties_forever(acquirer))
        try:
            yield
        finally:
            delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await delivery
            await acquirer.client.aclose()

    app = FastAPI(
        title="Bastion sandbox acquirer",
        version=bastion.__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.acquirer = acquirer
    app.state.database = acquirer.database
    metrics = HttpMetrics()
    app.state.metrics = metrics
    errors.install(app)
    app.add_middleware(EdgeMiddleware, max_body_bytes=BODY_BYTES_MAX, large_body_paths={}, metrics=metrics)
    app.add_api_route("/healthz", health.healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", health.readyz, methods=["GET"], include_in_schema=False)
    app.include_router(router)
    return app
