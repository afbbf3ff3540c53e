"""Public operational routes: liveness, readiness and Prometheus metrics."""

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from bastion.platform.db import Database
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
    registry: HttpMetrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
