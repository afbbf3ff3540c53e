"""The API application factory."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse
from swagger_ui_bundle import swagger_ui_path

import bastion
from bastion.api.context import Services, scope_of
from bastion.api.demo import routes as demo
from bastion.connectors.routes import connectors_router as connector_matrix_router
from bastion.connectors.routes import router as connector_accounts_router
from bastion.customers.routes import router as customers_router
from bastion.events.routes import router as events_router
from bastion.kernel.errors import ConfigurationError
from bastion.ledger.routes import router as ledger_router
from bastion.payments.jobs import payments_janitor_forever
from bastion.payments.routes import (
    NOTIFICATION_PATHS,
    balance_router,
    balance_transactions_router,
    charges_router,
    connectors_router,
    disputes_router,
    intents_router,
    refunds_router,
    reviews_router,
)
from bastion.payments.routes import router as payment_methods_router
from bastion.platform.http import errors, health
from bastion.platform.http.forms import FORM_MEDIA_TYPE, JSON_MEDIA_TYPE, BracketEncoding, RequestBodies
from bastion.platform.http.middleware import EdgeMiddleware
from bastion.platform.http.ratelimit import RateLimiter
from bastion.platform.http.schemas import state_text_without_nul
from bastion.platform.idempotency.janitor import resume_abandoned_forever
from bastion.platform.metrics import HttpMetrics
from bastion.risk.routes import router as risk_router
from bastion.routing.routes import router as routing_rules_router
from bastion.webhooks.routes import router as webhook_endpoints_router

_DOCS_ASSETS = "/docs/assets"
# Deny by default: a route must require a scope or be listed here, as public or (`/metrics`,
# the scrape token; the demo shop, served only with `--demo`; connectors' notifications, signed)
# behind a check of its own.
PUBLIC_PATHS = (
    frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", _DOCS_ASSETS})
    | demo.PUBLIC_PATHS
    | NOTIFICATION_PATHS
)


def route_scope(route: APIRoute) -> str | None:
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if (scope := scope_of(dependency.call)) is not None:
            return scope
        pending.extend(dependency.dependencies)
    return None


def served_routes(app: FastAPI) -> list[RouteContext]:
    """Every route the app serves. FastAPI keeps each included router as one nested entry
    of `app.routes`, so walking `app.routes` alone would miss every router's routes."""
    return list(iter_route_contexts(app.routes))


def unguarded_routes(app: FastAPI) -> list[str]:
    """Routes of any kind (API routes, plain routes, mounts) neither public nor guarded by a scope."""
    return [
        f"{sorted(context.methods or ())} {context.path}"
        for context in served_routes(app)
        if context.path not in PUBLIC_PATHS
        and not (isinstance(context.original_route, APIRoute) and route_scope(context.original_route) is not None)
    ]


def _published_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The document as the server behaves: FastAPI documents a 422 for every route with
    inputs, but Bastion answers bad input with a 400 and its own error body
    (`bastion.platform.http.errors`); bodies are also taken form-encoded, as Stripe's SDKs send
    them; and no text may hold NUL."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = FastAPI.openapi(app)  # builds and caches app.openapi_schema
        for path_item in document["paths"].values():
            for operation in path_item.values():
                operation["responses"].pop("422", None)
                content = operation.get("requestBody", {}).get("content", {})
                if JSON_MEDIA_TYPE in content:
                    # The same parameters in Stripe's bracket encoding (`bastion.platform.http.forms`).
                    content[FORM_MEDIA_TYPE] = content[JSON_MEDIA_TYPE]
        for name in ("HTTPValidationError", "ValidationError"):
            document.get("components", {}).get("schemas", {}).pop(name, None)
        state_text_without_nul(document)
        return document

    return openapi


def create_app(services: Services) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        interval_s = services.settings.idempotency_resume_interval_s
        janitors = [
            asyncio.create_task(resume_abandoned_forever(services.commands, interval_s)),
            asyncio.create_task(payments_janitor_forever(services.commands, interval_s)),
        ]
        yield
        for janitor in janitors:
            janitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await janitor
        await services.vault.close()
        for client in services.outbound:
            await client.aclose()
        await services.velocity.close()
        await services.database.dispose()

    app = FastAPI(
        lifespan=lifespan,
        title="Bastion API",
        version=bastion.__version__,
        description="Payments API. Authenticate with `Authorization: Bearer sk_test_...`; "
        "send `Idempotency-Key` on POST to retry safely.",
        docs_url=None,
        redoc_url=None,
    )
    metrics = HttpMetrics()
    for collector in services.model_metrics:
        metrics.registry.register(collector)
    app.state.services = services
    app.state.database = services.database
    app.state.metrics = metrics
    errors.install(app)
    app.include_router(health.router)
    app.include_router(customers_router)
    app.include_router(webhook_endpoints_router)
    app.include_router(payment_methods_router)
    app.include_router(intents_router)
    app.include_router(charges_router)
    app.include_router(refunds_router)
    app.include_router(disputes_router)
    app.include_router(reviews_router)
    app.include_router(balance_router)
    app.include_router(balance_transactions_router)
    app.include_router(connectors_router)
    app.include_router(connector_matrix_router)
    app.include_router(connector_accounts_router)
    app.include_router(routing_rules_router)
    app.include_router(events_router)
    app.include_router(ledger_router)
    app.include_router(risk_router)
    app.state.metrics_token = services.metrics_token
    if services.settings.demo:
        app.include_router(demo.router)
        app.state.demo_rate_limiter = RateLimiter(demo.PAYMENTS_PER_S, demo.PAYMENTS_BURST, per="client")
    app.openapi = _published_openapi(app)  # type: ignore[method-assign]  # FastAPI's documented way to adjust the document
    app.mount(_DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Bastion API",
            swagger_js_url=f"{_DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{_DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{_DOCS_ASSETS}/favicon-32x32.png",
        )

    if unguarded := unguarded_routes(app):
        raise ConfigurationError(f"routes without a scope and not public: {', '.join(unguarded)}")
    app.add_middleware(BracketEncoding, bodies=RequestBodies(app).schema_of)
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=services.settings.max_body_bytes,
        large_body_paths={"/v1/ledger/entries/batch": services.settings.max_batch_body_bytes},
        metrics=metrics,
        authenticate=services.authenticator.check_headers,
    )
    return app
