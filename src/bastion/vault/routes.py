"""The vault's two listeners.

Public (the browser origin): the hosted card fields page, its scripts, and tokenization
with a publishable key. Internal (mutual TLS, only the API holds a client certificate):
token exchange and forwarding to processors.
"""

import html
from importlib import resources
from string import Template
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import HTMLResponse, Response

from bastion.kernel.errors import AuthenticationFailed, ResourceMissing
from bastion.platform.http.client_ip import client_ip
from bastion.platform.http.credentials import bearer_token
from bastion.platform.http.ratelimit import RateLimiter
from bastion.platform.http.responses import JsonResponse
from bastion.platform.logging import request_id_var
from bastion.vault import service
from bastion.vault.errors import OriginNotAllowed
from bastion.vault.resources import Token
from bastion.vault.schemas import Exchange, Forward, ForwardResponse, TokenCreate

public_router = APIRouter()
internal_router = APIRouter(prefix="/internal/v1")

_STATIC = resources.files("bastion.vault") / "static"
_STATIC_TYPES = {
    "bastion.js": "text/javascript; charset=utf-8",
    "card-fields.js": "text/javascript; charset=utf-8",
    "card-fields.css": "text/css; charset=utf-8",
}
_KEY_LENGTH_MAX = 200
_ORIGIN_LENGTH_MAX = 300


def _vault(request: Request) -> service.Vault:
    vault: service.Vault = request.app.state.vault
    return vault


def fields_csp(frame_ancestors: tuple[str, ...]) -> str:
    """The card fields page runs only its own script and talks only to its own origin;
    only the merchant's registered origins may frame it (PCI DSS 6.4.3)."""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        f"form-action 'none'; base-uri 'none'; frame-ancestors {' '.join(frame_ancestors) or chr(39) + 'none' + chr(39)}"
    )


@public_router.get("/v1/elements/card", include_in_schema=False)
async def card_fields(
    request: Request,
    key: Annotated[str, Query(max_length=_KEY_LENGTH_MAX)],
    origin: Annotated[str, Query(max_length=_ORIGIN_LENGTH_MAX)],
) -> HTMLResponse:
    vault = _vault(request)
    publishable = await vault.publishable_key(key)
    if origin not in publishable.allowed_origins:
        raise OriginNotAllowed(
            f"The origin {origin!r} is not registered for this merchant: register it with "
            "`bastion merchant origins add` before framing the card fields there.",
            param="origin",
        )
    page = Template((_STATIC / "card-fields.html").read_text()).substitute(
        publishable_key=html.escape(key),
        parent_origin=html.escape(origin),
        vault_origin=html.escape(vault.settings.vault_public_url),
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": fields_csp(publishable.allowed_origins)})


@public_router.get("/static/{name}", include_in_schema=False)
async def static_file(name: str) -> Response:
    media_type = _STATIC_TYPES.get(name)
    if media_type is None:
        raise ResourceMissing(f"No such file: {name!r}", param="name")
    # bastion.js is loaded by merchant pages on other origins.
    headers = {"Cross-Origin-Resource-Policy": "cross-origin", "Cache-Control": "public, max-age=300"}
    return Response((_STATIC / name).read_bytes(), media_type=media_type, headers=headers)


def _publishable_key(authorization: str | None) -> str:
    key = bearer_token(authorization)
    if key is None:
        raise AuthenticationFailed("No publishable key provided: send `Authorization: Bearer pk_test_...`")
    return key


@public_router.post("/v1/tokens", response_model=Token)
async def create_token(
    request: Request,
    body: TokenCreate,
    authorization: Annotated[str | None, Header(max_length=_KEY_LENGTH_MAX)] = None,
) -> JsonResponse:
    """Tokenize a card typed into the hosted fields: a single-use `tok_...`, valid for 15 minutes."""
    vault = _vault(request)
    ip_address = client_ip(request)
    # The client's own bucket first, before its key is even looked up: a publishable key is
    # public, so the key's (larger) bucket alone would let one client spend a shop's budget.
    per_ip: RateLimiter = request.app.state.ip_rate_limiter
    per_ip.check(ip_address or "unknown")
    publishable = await vault.publishable_key(_publishable_key(authorization))
    per_key: RateLimiter = request.app.state.rate_limiter
    per_key.check(publishable.key_id)
    client = service.Client(ip_address=ip_address, device=service.device_of(body.signals.device), request_id=request_id_var.get())
    return JsonResponse(await service.tokenize(vault, publishable, body, client))


@internal_router.post("/tokens/{token_id}/exchange")
async def exchange_token(request: Request, token_id: str, body: Exchange) -> JsonResponse:
    """Use a single-use token for a payment method: the card's metadata, never its number."""
    return JsonResponse(await service.exchange(_vault(request), body, token_id))


@internal_router.post("/forward", response_model=ForwardResponse)
async def forward(request: Request, body: Forward) -> JsonResponse:
    """Send a request with card data filled in to an allowlisted processor; its answer comes back masked."""
    return JsonResponse(await service.forward(_vault(request), body))
