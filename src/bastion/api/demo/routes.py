"""The demo shop's routes. It plays a merchant: its page gets only a token from the vault's
card fields, and its server side pays the order with it using the merchant's secret key, over
HTTP, through the whole API like any merchant server would: the token becomes a payment
method, and a PaymentIntent is created and confirmed with it. A card whose issuer asks for 3-D
Secure sends the browser to the issuer's page, which comes back to the shop's completion page."""

import html
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from string import Template
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.responses import HTMLResponse, Response

from bastion.kernel.errors import ResourceMissing
from bastion.kernel.ids import is_id
from bastion.kernel.money import Money
from bastion.platform.http.client_ip import client_ip
from bastion.platform.http.ratelimit import RateLimiter
from bastion.platform.http.responses import JsonResponse
from bastion.platform.secret_files import read_secret, write_secret
from bastion.platform.settings import Settings

router = APIRouter(prefix="/demo", include_in_schema=False)
# Where the issuer's 3-D Secure page sends the shopper back, under the API's origin.
COMPLETE_PATH = "/demo/checkout/complete"
PUBLIC_PATHS = frozenset({"/demo/checkout", "/demo/checkout.js", "/demo/checkout.css", "/demo/payments", COMPLETE_PATH})

_ASSETS = resources.files("bastion.api.demo")
_API_TIMEOUT_S = 30.0
# The demo's routes spend the demo merchant's budget with its secret key, for anyone who can
# reach the page: a few payments and look-ups (back from the bank, a reload) per client address.
PAYMENTS_PER_S = 1
PAYMENTS_BURST = 5
# The order on the page: a T-shirt and its shipping.
ORDER_AMOUNT = 2950
ORDER_CURRENCY = "EUR"
# The completion page runs no script and frames nothing: its styles are all it loads.
_COMPLETE_POLICY = "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


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


@asynccontextmanager
async def _merchant_api(request: Request) -> AsyncIterator[httpx.AsyncClient]:
    """The API as the shop's server calls it, with the demo merchant's secret key: in-process,
    but through the whole stack (authentication, scopes, idempotency) like a remote client."""
    limiter: RateLimiter = request.app.state.demo_rate_limiter
    limiter.check(client_ip(request) or "unknown")
    transport = httpx.ASGITransport(app=request.app, client=("127.0.0.1", 0))
    headers = {"Authorization": f"Bearer {_credentials(request)['secret']}"}
    async with httpx.AsyncClient(
        transport=transport, base_url=str(request.base_url), timeout=_API_TIMEOUT_S, headers=headers
    ) as api:
        yield api


@router.post("/payments")
async def pay(request: Request, body: DemoToken) -> JsonResponse:
    """The shop's server: the token becomes a payment method, which pays the order. The page gets
    what a shop would show: the outcome, the intent and the card's brand and last four digits;
    a declined card's message as an error; or, when the issuer asks for 3-D Secure, the URL of
    its page to send the browser to."""
    async with _merchant_api(request) as api:
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
                # The origin the shopper's browser reached the shop on, so that it comes back there.
                "return_url": f"{str(request.base_url).rstrip('/')}{COMPLETE_PATH}",
            },
            headers={"Idempotency-Key": f"demo-{body.token}"},
        )
    if intent.status_code != httpx.codes.OK:
        return JsonResponse(intent.json(), status_code=intent.status_code)
    paid = intent.json()
    if paid["status"] == "requires_action":
        return JsonResponse(
            {
                "status": paid["status"],
                "payment_intent": paid["id"],
                "redirect_url": paid["next_action"]["redirect_to_url"]["url"],
            }
        )
    card = method.json()["card"]
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


@router.get("/checkout/complete")
async def complete(request: Request, payment_intent: str | None = None) -> HTMLResponse:
    """Where the issuer's 3-D Secure page sends the shopper back, with `payment_intent` and
    `redirect_status` in the query. Only the intent, retrieved with the shop's key, tells the
    outcome: the query is the browser's, anyone can write it."""
    if payment_intent is None or not is_id(payment_intent, "pi"):
        # Not echoed: whatever was typed there stays out of the page.
        return _complete_page(
            "Payment not found",
            _outcome_section(
                "This link does not name a payment",
                "The parameter payment_intent must be a payment's id: pi_ followed by 26 letters and digits.",
            ),
            400,
        )
    async with _merchant_api(request) as api:
        found = await api.get(f"/v1/payment_intents/{payment_intent}")
        if found.status_code != httpx.codes.OK:
            return _api_refusal(found)
        intent: dict[str, Any] = found.json()
        if intent["status"] != "succeeded":
            return _unpaid_page(intent)
        method = await api.get(f"/v1/payment_methods/{intent['payment_method']}")
    if method.status_code != httpx.codes.OK:
        return _api_refusal(method)
    return _complete_page("Paid", _paid_section(intent, method.json()))


def _complete_page(title: str, section: str, status_code: int = 200) -> HTMLResponse:
    """`section` is HTML whose every value is escaped already."""
    page = Template((_ASSETS / "complete.html").read_text()).substitute(title=html.escape(title), section=section)
    return HTMLResponse(page, status_code=status_code, headers={"Content-Security-Policy": _COMPLETE_POLICY})


def _outcome_section(
    heading: str, message: str, link: tuple[str, str] = ("/demo/checkout", "Back to the shop"), *, failed: bool = False
) -> str:
    """A heading, a sentence (in the checkout's error style when the payment `failed`) and a link
    (its URL and its text) to go on from there."""
    href, text = link
    shown_as = ' class="error" role="alert"' if failed else ""
    return (
        '<section class="outcome" aria-labelledby="outcome-heading">'
        f'<h2 id="outcome-heading">{html.escape(heading)}</h2>'
        f'<p id="outcome-message"{shown_as}>{html.escape(message)}</p>'
        f'<p><a href="{html.escape(href)}">{html.escape(text)}</a></p></section>'
    )


def _api_refusal(answer: httpx.Response) -> HTMLResponse:
    """The API's refusal, as a page: 404 for an intent the shop does not have (another merchant's)."""
    if answer.status_code == httpx.codes.NOT_FOUND:
        message = "This shop has no payment with this id: check the link, or pay again from the shop."
    else:
        message = f"The shop could not look the payment up: {answer.json()['error']['message']}"
    return _complete_page("Payment not found", _outcome_section("Payment not found", message), answer.status_code)


def _unpaid_page(intent: Mapping[str, Any]) -> HTMLResponse:
    if intent["status"] in ("processing", "requires_action"):
        # The browser may come back before the acquirer's notification reaches Bastion.
        section = _outcome_section(
            "Payment still processing",
            "Your bank's answer has not reached the shop yet: this can take a moment.",
            (f"{COMPLETE_PATH}?payment_intent={intent['id']}", "Reload this page"),
        )
        return _complete_page("Processing", section)
    error = intent["last_payment_error"]
    message = error["message"] if error is not None else "The payment was not completed."
    section = _outcome_section("Payment failed", message, ("/demo/checkout", "Try again"), failed=True)
    return _complete_page("Payment failed", section)


def _amount(intent: Mapping[str, Any]) -> str:
    """As the checkout's script writes it (€29.50): the shop sells in euros."""
    money = Money(intent["amount"], intent["currency"].upper())
    return f"€{money.to_decimal()}" if money.currency == "EUR" else str(money)


def _paid_section(intent: Mapping[str, Any], method: Mapping[str, Any]) -> str:
    """The checkout's result (checkout.html, `#result`), with the same ids: brand and last four
    digits only, never more of the card."""
    card = method["card"]
    rows = (
        ("Amount", f'<dd id="result-amount">{html.escape(_amount(intent))}</dd>'),
        (
            "Card",
            f'<dd><span id="result-brand" class="brand">{html.escape(card["brand"])}</span> ending '
            f'<span id="result-last4">{html.escape(card["last4"])}</span></dd>',
        ),
        ("Payment", f'<dd id="result-id" class="identifier">{html.escape(intent["id"])}</dd>'),
        ("Payment method", f'<dd id="result-payment-method" class="identifier">{html.escape(method["id"])}</dd>'),
        ("Fingerprint", f'<dd id="result-fingerprint" class="identifier">{html.escape(card["fingerprint"])}</dd>'),
    )
    described = "".join(f"<dt>{label}</dt>{value}" for label, value in rows)
    return (
        '<section id="result" class="result" aria-labelledby="result-heading">'
        f'<h2 id="result-heading">Paid: thank you for your order</h2><dl>{described}</dl>'
        '<p><a href="/demo/checkout">Back to the shop</a></p></section>'
    )
