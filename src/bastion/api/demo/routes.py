"""The demo shop's routes. It plays a merchant: its page gets only a token from the vault's
card fields, and its server side pays the order with it using the merchant's secret key, over
HTTP, through the whole API like any merchant server would: the token becomes a payment
method, and a PaymentIntent is created and confirmed with it."""

import html
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from string import Template
from typing import Annotated

import httpx
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.responses import HTMLResponse, Response

from bastion.kernel.errors import ResourceMissing
from bastion.platform.http.client_ip import client_ip
from bastion.platform.http.ratelimit import RateLimiter
from bastion.platform.http.responses import JsonResponse
from bastion.platform.secret_files import read_secret, write_secret
from bastion.platform.settings import Settings

router = APIRouter(prefix="/demo", include_in_schema=False)
PUBLIC_PATHS = frozenset({"/demo/checkout", "/demo/checkout.js", "/demo/checkout.css", "/demo/payments"})

_ASSETS = resources.files("bastion.api.demo")
_API_TIMEOUT_S = 30.0
# The demo's write route spends the demo merchant's budget with its secret key, for anyone
# who can reach the page: a few payments per client address.
PAYMENTS_PER_S = 1
PAYMENTS_BURST = 5
# The order on the page: a T-shirt and its shipping.
ORDER_AMOUNT = 2950
ORDER_CURRENCY = "EUR"


def credentials_path(data_dir: Path) -> Path:
    """Where `bastion serve` keeps the demo merchant's test keys (0600, never in the repository)."""
    return data_dir / "secrets" / "demo.json"


def save_credentials(data_dir: Path, credentials: dict[str, str]) -> None:
    write_secret(credentials_path(data_dir), json.dumps(credentials).encode())


def load_credentials(data_dir: Path) -> dict[str, str] | None:
    path = credentials_path(data_dir)
    if not path.exists():
        return None
    loaded: dict[str, str] = json.loads(read_secret(path))
    return loaded


def _credentials(request: Request) -> Mapping[str, str]:
    """The demo merchant's keys, handed to the API at start (`bastion.platform.grant`)."""
    keys: Mapping[str, str] | None = request.app.state.services.demo_keys
    if keys is None:
        raise ResourceMissing("The demo shop is not set up: `bastion serve --demo` creates it at start.", param="demo")
    return keys


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.services.settings
    return settings


@router.get("/checkout")
async def checkout(request: Request) -> HTMLResponse:
    settings = _settings(request)
    vault_origin = settings.vault_public_url
    page = Template((_ASSETS / "checkout.html").read_text()).substitute(
        publishable_key=html.escape(_credentials(request)["publishable"]), vault_origin=html.escape(vault_origin)
    )
    policy = (
        f"default-src 'none'; script-src 'self' {vault_origin}; style-src 'self'; connect-src 'self'; "
        f"frame-src {vault_origin}; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": policy})


@router.get("/checkout.js")
async def checkout_script() -> Response:
    return Response((_ASSETS / "checkout.js").read_bytes(), media_type="text/javascript; charset=utf-8")


@router.get("/checkout.css")
async def checkout_style() -> Response:
    return Response((_ASSETS / "checkout.css").read_bytes(), media_type="text/css; charset=utf-8")


class DemoToken(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    token: Annotated[str, StringConstraints(max_length=64)]


@router.post("/payments")
async def pay(request: Request, body: DemoToken) -> JsonResponse:
    """The shop's server: the token becomes a payment method, which pays the order. The page gets
    what a shop would show: the outcome, the intent and the card's brand and last four digits;
    a declined card's message as an error."""
    limiter: RateLimiter = request.app.state.demo_rate_limiter
    limiter.check(client_ip(request) or "unknown")
    secret = _credentials(request)["secret"]
    transport = httpx.ASGITransport(app=request.app, client=("127.0.0.1", 0))
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(
        transport=transport, base_url=str(request.base_url), timeout=_API_TIMEOUT_S, headers=headers
    ) as api:
        method = await api.post(
            "/v1/payment_methods",
            json={"type": "card", "card": {"token": body.token}, "metadata": {"source": "demo checkout"}},
        )
        if method.status_code != httpx.codes.OK:
            return JsonResponse(method.json(), status_code=method.status_code)
        intent = await api.post(
            "/v1/payment_intents",
            json={
                "amount": ORDER_AMOUNT,
                "currency": ORDER_CURRENCY,
                "payment_method": method.json()["id"],
                "confirm": True,
                "description": "Bastion demo shop order",
            },
            headers={"Idempotency-Key": f"demo-{body.token}"},
        )
    if intent.status_code != httpx.codes.OK:
        return JsonResponse(intent.json(), status_code=intent.status_code)
    card = method.json()["card"]
    paid = intent.json()
    return JsonResponse(
        {
            "status": paid["status"],
            "payment_intent": paid["id"],
            "amount": paid["amount"],
            "currency": paid["currency"],
            "payment_method": method.json()["id"],
            "card": {"brand": card["brand"], "last4": card["last4"], "fingerprint": card["fingerprint"]},
        }
    )
