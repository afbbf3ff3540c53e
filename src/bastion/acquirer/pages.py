"""The cardholder's pages of the sandbox acquirer: the 3-D Secure challenge an issuer would show.
Plain HTTP on loopback, like the API's own port, because a browser does not trust the install's
private CA; the page holds no card data, only the payment's amount and last four digits."""

import html
from typing import Annotated
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

import bastion
from bastion.acquirer import service
from bastion.acquirer.notifications import deliver_due
from bastion.acquirer.service import Acquirer
from bastion.kernel.errors import BastionError
from bastion.kernel.money import Money
from bastion.platform.db import AnyRow
from bastion.platform.http import health
from bastion.platform.http.errors import status_of
from bastion.platform.logging import get_logger

FORM_BYTES_MAX = 1_024
_TOKEN = Query(min_length=1, max_length=64)
# No script, no frame, nothing from elsewhere: the page is a form and its own styles.
_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
_STYLE = """
body { font-family: system-ui, sans-serif; background: #f4f5f7; display: flex; justify-content: center; padding-top: 8vh; }
main { background: #fff; border-radius: 8px; padding: 2rem 2.5rem; max-width: 26rem; box-shadow: 0 2px 12px #0002; }
h1 { font-size: 1.2rem; margin-top: 0; }
button { font-size: 1rem; padding: .6rem 1.2rem; border-radius: 6px; border: 0; margin-right: .6rem; cursor: pointer; }
.complete { background: #1a7f37; color: #fff; }
.fail { background: #cf222e; color: #fff; }
"""
_log = get_logger("bastion.acquirer")


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    document = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>'
        f"<body><main>{body}</main></body></html>"
    )
    return HTMLResponse(document, status_code=status_code, headers=_HEADERS)


def _refusal(error: BastionError) -> HTMLResponse:
    return _page("Authentication", f"<h1>Authentication</h1><p>{html.escape(error.message)}</p>", status_of(error))


def _challenge(row: AnyRow, token: str) -> HTMLResponse:
    amount = Money(row["amount"], row["currency"])
    body = (
        "<h1>3-D Secure test authentication</h1>"
        f"<p>The sandbox issuer asks you to confirm a payment of <strong>{html.escape(str(amount))}</strong> "
        f"with the card ending in <strong>{html.escape(row['card_last4'])}</strong>.</p>"
        "<p>This page stands for your bank's. Choose how the authentication ends:</p>"
        f'<form method="post" action="/challenges/{html.escape(row["id"])}">'
        f'<input type="hidden" name="token" value="{html.escape(token)}">'
        '<button class="complete" name="outcome" value="complete">Complete authentication</button>'
        '<button class="fail" name="outcome" value="fail">Fail authentication</button>'
        "</form>"
    )
    return _page("3-D Secure authentication", body)


def _return_to(return_url: str, redirect_status: str) -> str:
    """`return_url` with `redirect_status` added to its query, as Stripe's redirects carry it."""
    parts = urlsplit(return_url)
    query = parse_qs(parts.query, keep_blank_values=True) | {"redirect_status": [redirect_status]}
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))


async def show_challenge(request: Request, payment_id: str, token: Annotated[str, _TOKEN]) -> Response:
    acquirer: Acquirer = request.app.state.acquirer
    try:
        row = await service.challenged_payment(acquirer, payment_id, token)
    except BastionError as refusal:
        return _refusal(refusal)
    return _challenge(row, token)


async def answer_challenge(request: Request, payment_id: str) -> Response:
    acquirer: Acquirer = request.app.state.acquirer
    body = await request.body()
    form = parse_qs(body[:FORM_BYTES_MAX].decode(errors="replace"))
    token = form.get("token", [""])[0]
    outcome = form.get("outcome", [""])[0]
    if outcome not in ("complete", "fail") or len(body) > FORM_BYTES_MAX:
        return _page("Authentication", "<h1>Authentication</h1><p>Choose to complete or to fail the authentication.</p>", 400)
    try:
        row = await service.complete_challenge(acquirer, payment_id, token, authenticated=outcome == "complete")
    except BastionError as refusal:
        return _refusal(refusal)
    # Bastion hears of the outcome before the browser returns to the merchant, when it can; a
    # notification it did not take is sent again by the delivery loop.
    try:
        await deliver_due(acquirer)
    except Exception:  # noqa: BLE001  (the delivery loop sends it later)
        _log.exception("notification_round_failed")
    redirect_status = "failed" if outcome == "fail" else "succeeded"
    if row["return_url"] is not None:
        return RedirectResponse(_return_to(row["return_url"], redirect_status), status_code=303, headers=_HEADERS)
    said = "completed" if outcome == "complete" else "failed"
    return _page("Authentication", f"<h1>Authentication {said}</h1><p>You can close this window.</p>")


def create_pages_app(acquirer: Acquirer) -> FastAPI:
    app = FastAPI(
        title="Bastion sandbox issuer pages", version=bastion.__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.acquirer = acquirer
    app.state.database = acquirer.database
    app.add_api_route("/healthz", health.healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/challenges/{payment_id}", show_challenge, methods=["GET"], include_in_schema=False)
    app.add_api_route("/challenges/{payment_id}", answer_challenge, methods=["POST"], include_in_schema=False)
    return app
