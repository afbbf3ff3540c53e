"""The vault's application factories: one app per listener, sharing one `Vault` and one
set of HTTP metrics."""

from fastapi import FastAPI

import bastion
from bastion.platform.http import errors, health
from bastion.platform.http.middleware import EdgeMiddleware
from bastion.platform.http.ratelimit import RateLimiter
from bastion.platform.metrics import HttpMetrics
from bastion.vault.routes import internal_router, public_router
from bastion.vault.service import Vault


def _app(vault: Vault, metrics: HttpMetrics, title: str, max_body_bytes: int) -> FastAPI:
    app = FastAPI(title=title, version=bastion.__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.vault = vault
    app.state.database = vault.database
    app.state.metrics = metrics
    errors.install(app)
    app.add_middleware(EdgeMiddleware, max_body_bytes=max_body_bytes, large_body_paths={}, metrics=metrics)
    app.add_api_route("/healthz", health.healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", health.readyz, methods=["GET"], include_in_schema=False)
    return app


def create_public_app(vault: Vault, metrics: HttpMetrics) -> FastAPI:
    """The browser origin: card fields, bastion.js, tokenization with a publishable key."""
    app = _app(vault, metrics, "Bastion vault", vault.settings.vault_max_body_bytes)
    settings = vault.settings
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst, per="publishable key")
    app.state.ip_rate_limiter = RateLimiter(
        settings.vault_tokenize_per_ip_per_s, settings.vault_tokenize_per_ip_burst, per="client"
    )
    app.include_router(public_router)
    return app


def create_internal_app(vault: Vault, metrics: HttpMetrics) -> FastAPI:
    """The API's door, behind mutual TLS: token exchange and forwarding, and the metrics of
    both listeners (shoppers' browsers have no business reading them)."""
    app = _app(vault, metrics, "Bastion vault (internal)", vault.settings.max_body_bytes)
    app.include_router(internal_router)
    # Only the API's certificate gets this far: no token on top of mutual TLS.
    app.state.metrics_token = None
    app.add_api_route("/metrics", health.metrics, methods=["GET"], include_in_schema=False)
    return app
