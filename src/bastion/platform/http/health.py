"""Operational routes: liveness and readiness (public), and Prometheus metrics (behind the
scrape token on the API; on the vault, behind its mutual TLS)."""

import hmac

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from bastion.kernel.errors import AuthenticationFailed
from bastion.platform.db import Database
from bastion.platform.http.credentials import bearer_token
from bastion.platform.http.responses import JsonResponse
from bastion.platform.logging import get_logger
from bastion.platform.metrics import HttpMetrics

router = APIRouter(tags=["operations"])
_log = get_logger(__name__)


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> JsonResponse:
    return JsonResponse({"status": "ok"})


@router.get("/readyz", summary="Readiness: the database answers")
async def readyz(request: Request) -> JsonResponse:
    """The database of the app's process: the API's or the vault's (`app.state.database`)."""
    database: Database = request.app.state.database
    try:
        await database.ping()
    except Exception as error:  # noqa: BLE001  (any failure means not ready; the reason goes to the log)
        _log.warning("readiness_failed", error_type=type(error).__name__)
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JsonResponse({"status": "ok", "database": "ok"})


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """`app.state.metrics_token`: the bearer token a scraper must present, or None where the
    listener authenticates its clients itself (the vault's mutual TLS)."""
    token: bytes | None = request.app.state.metrics_token
    if token is not None:
        presented = bearer_token(request.headers.get("authorization"))
        if presented is None or not hmac.compare_digest(presented.encode(), token):
            raise AuthenticationFailed(
                "Metrics need the scrape token: `Authorization: Bearer <contents of secrets/metrics.token>` (docs/operations.md)"
            )
    registry: HttpMetrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
