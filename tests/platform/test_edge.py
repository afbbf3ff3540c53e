"""The HTTP edge over the real app: security headers and request ids on every response,
JSON-only bodies, readiness, metrics labelled by route template, strict list parameters."""

import dataclasses
import html
import re

import httpx
from fastapi.routing import APIRoute
from prometheus_client.parser import text_string_to_metric_families

from bastion.api.app import create_app, route_scope, served_routes
from bastion.api.demo.routes import COMPLETE_PATH, PAYMENTS_BURST
from bastion.kernel.ids import new_id
from bastion.platform.metrics import metrics_token_path
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import CHALLENGED, token_id

_SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
_API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_REQUEST_ID = re.compile(r"req_[0-9A-HJKMNP-TV-Z]{26}")


def _assert_edge_headers(response: httpx.Response) -> None:
    for name, value in _SECURITY_HEADERS.items():
        assert response.headers.get_list(name) == [value], (response.request.url, name)
    csp = response.headers.get_list("content-security-policy")
    assert len(csp) == 1
    assert "frame-ancestors 'none'" in csp[0]
    if not response.request.url.path.startswith("/docs"):
        assert csp[0] == _API_CSP
    assert _REQUEST_ID.fullmatch(response.headers["request-id"]), response.headers.get("request-id")
    if response.status_code >= 400 and response.headers.get("content-type") == "application/json":
        assert response.json()["error"]["request_id"] == response.headers["request-id"], response.text


async def test_every_response_carries_security_headers_and_request_id(platform: Platform, merchant: Credentials) -> None:
    reader = await platform.api_key(merchant.merchant_id, scopes=["customers:read"])
    too_large = {"description": "x" * (platform.settings.max_body_bytes + 1)}
    expected = [
        (merchant, "GET", "/v1/customers", None, 200),
        (merchant, "GET", "/v1/customers?limit=0", None, 400),
        (None, "GET", "/v1/customers", None, 401),
        (reader, "POST", "/v1/customers", {}, 403),
        (merchant, "GET", f"/v1/customers/{new_id('cus')}", None, 404),
        (merchant, "GET", "/v1/no-such-route", None, 404),
        (merchant, "PUT", "/v1/customers", {}, 405),
        (merchant, "POST", "/v1/customers", too_large, 413),
        (None, "GET", "/healthz", None, 200),
        (None, "GET", "/readyz", None, 200),
        (None, "GET", "/metrics", None, 401),
        (None, "GET", "/openapi.json", None, 200),
        (None, "GET", "/docs", None, 200),
    ]
    request_ids = set()
    for credentials, method, path, body, status in expected:
        async with platform.client(credentials) as client:
            response = await client.request(method, path, json=body)
        assert response.status_code == status, (method, path, response.text)
        _assert_edge_headers(response)
        request_ids.add(response.headers["request-id"])
    assert len(request_ids) == len(expected), "every request gets its own id"


async def test_route_missing_and_method_not_allowed_are_explained(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        missing = await client.get("/v1/no-such-route")
        assert missing.json()["error"]["code"] == "route_missing"
        # The Allow header names the methods of every route serving the URL (RFC 9110).
        for path, allowed in (("/v1/customers", {"GET", "POST"}), (f"/v1/customers/{new_id('cus')}", {"GET", "POST", "DELETE"})):
            not_allowed = await client.put(path, json={})
            assert not_allowed.status_code == 405
            assert not_allowed.json()["error"]["code"] == "method_not_allowed"
            assert set(not_allowed.headers["allow"].split(", ")) == allowed


async def test_an_unexpected_failure_is_a_bare_500_with_the_edge_headers(platform: Platform) -> None:
    app = create_app(platform.services)

    async def fail() -> None:
        raise RuntimeError("secret detail of the failure")

    app.add_api_route("/v1/fail", fail)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bastion.test") as client:
        response = await client.get("/v1/fail")
    assert response.status_code == 500
    _assert_edge_headers(response)
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("api_error", "internal_error")
    assert "secret detail" not in response.text


async def test_bodies_must_be_sent_as_json_or_form_encoded(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        for content, content_type in (
            (b'{"email": "jenny@example.com"}', "text/plain"),
            (b"email=jenny%40example.com", "multipart/form-data"),
            (b'{"email": "jenny@example.com"}', None),
        ):
            headers = {"Content-Type": content_type} if content_type else {}
            response = await client.post("/v1/customers", content=content, headers=headers)
            assert response.status_code == 415, (content_type, response.text)
            error = response.json()["error"]
            assert (error["type"], error["code"]) == ("invalid_request_error", "content_type_unsupported")
            assert "Content-Type: application/json" in error["message"]
            assert "application/x-www-form-urlencoded" in error["message"]
        assert (await client.get("/v1/customers")).json()["data"] == []
        accepted = await client.post(
            "/v1/customers", content=b'{"name": "Jenny"}', headers={"Content-Type": "application/json; charset=utf-8"}
        )
        assert accepted.status_code == 200, accepted.text
    async with platform.client() as anonymous:
        unauthenticated = await anonymous.post("/v1/customers", data={"email": "jenny@example.com"})
    assert unauthenticated.status_code == 401, "authentication comes before the body is judged"


async def test_metrics_need_the_scrape_token(platform: Platform, merchant: Credentials) -> None:
    """Not public, and not for merchants: the token made at install (0600), compared in constant time."""
    token_file = metrics_token_path(platform.settings.data_dir)
    assert token_file.stat().st_mode & 0o077 == 0
    async with platform.client() as client:
        refused = [
            await client.get("/metrics"),
            await client.get("/metrics", headers=merchant.headers),
            await client.get("/metrics", headers={"Authorization": f"Bearer {token_file.read_text().strip()[:-1]}"}),
        ]
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {token_file.read_text().strip()}"})
    assert [answer.status_code for answer in refused] == [401, 401, 401]
    assert scraped.status_code == 200
    assert "bastion_http_requests_total" in scraped.text


def _demo_shop(platform: Platform, shop: Credentials | None = None) -> httpx.AsyncClient:
    """The app with the demo shop on, `shop` its merchant (by default, none set up), as one
    client address reaches it."""
    keys = None if shop is None else {"secret": shop.secret, "publishable": shop.publishable}
    settings = dataclasses.replace(platform.settings, demo=True)
    services = dataclasses.replace(platform.services, settings=settings, demo_keys=keys)
    transport = httpx.ASGITransport(app=create_app(services), client=("203.0.113.9", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://bastion.test")


async def test_the_demo_shop_is_served_only_when_asked_and_its_payments_are_limited(platform: Platform) -> None:
    async with platform.client() as client:
        assert (await client.get("/demo/checkout")).status_code == 404
    async with _demo_shop(platform) as client:
        payments = [await client.post("/demo/payments", json={"token": "tok_x"}) for _ in range(PAYMENTS_BURST + 1)]
    statuses = [answer.status_code for answer in payments]
    assert 429 not in statuses[:PAYMENTS_BURST], statuses
    assert statuses[PAYMENTS_BURST] == 429
    assert "per client" in payments[PAYMENTS_BURST].json()["error"]["message"]


async def test_the_demo_completion_page_refuses_a_bad_id_and_an_intent_not_the_shops(
    platform: Platform, merchant: Credentials
) -> None:
    shop = await platform.merchant(name="Demo shop")
    async with platform.client(merchant) as client:
        others = await client.post("/v1/payment_intents", json={"amount": 2950, "currency": "EUR"})
    assert others.status_code == 200, others.text
    bad = ["", "pi_x", new_id("ch"), "pi_" + "A" * 200, "4242424242424242", "<script>alert(1)</script>"]
    async with _demo_shop(platform, shop) as client:
        missing = await client.get(COMPLETE_PATH)
        refused = [await client.get(COMPLETE_PATH, params={"payment_intent": value}) for value in bad]
        unknown = [
            await client.get(COMPLETE_PATH, params={"payment_intent": intent_id})
            for intent_id in (new_id("pi"), others.json()["id"])
        ]
    for answer in [missing, *refused]:
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert "The parameter payment_intent must be a payment&#x27;s id" in answer.text, answer.text
    # Never echoed: a shopper may have pasted anything there, a card number included.
    for value, answer in zip(bad, refused, strict=True):
        assert value == "" or (value not in answer.text and html.escape(value) not in answer.text), value
    for answer in unknown:
        assert answer.status_code == 404, answer.text
        assert '<h2 id="outcome-heading">Payment not found</h2>' in answer.text
        assert "This shop has no payment with this id" in answer.text
        # A page that runs no script and loads nothing but its styles.
        assert answer.headers["content-security-policy"].startswith("default-src 'none'; style-src 'self';")
        assert "script" not in answer.headers["content-security-policy"]


async def test_a_challenged_demo_payment_sends_the_page_to_the_issuer_and_back_to_a_page_that_trusts_only_the_intent(
    platform: Platform, vault: ApiProcess, acquirer: ApiProcess, test_database: TestDatabase
) -> None:
    shop = await platform.merchant(name="Demo shop")
    token = await token_id(vault, shop, number=CHALLENGED)
    async with _demo_shop(platform, shop) as client:
        paid = await client.post("/demo/payments", json={"token": token})
        assert paid.status_code == 200, paid.text
        intent_id = paid.json()["payment_intent"]
        # The browser comes back saying it succeeded before the acquirer's notification did.
        back = await client.get(COMPLETE_PATH, params={"payment_intent": intent_id, "redirect_status": "succeeded"})
    assert paid.json() == {
        "status": "requires_action",
        "payment_intent": intent_id,
        "redirect_url": paid.json()["redirect_url"],
    }
    assert paid.json()["redirect_url"].startswith(f"http://127.0.0.1:{test_database.acquirer_pages_port}/challenges/acqp_")
    async with platform.client(shop) as client:
        intent = (await client.get(f"/v1/payment_intents/{intent_id}")).json()
    # Where the shopper's browser reached the shop; the issuer's page comes back there.
    assert intent["next_action"]["redirect_to_url"]["return_url"] == f"http://bastion.test{COMPLETE_PATH}"
    assert back.status_code == 200
    assert "<title>Processing: Bastion demo shop</title>" in back.text
    assert "Your bank&#x27;s answer has not reached the shop yet" in back.text
    assert f'<a href="{COMPLETE_PATH}?payment_intent={intent_id}">Reload this page</a>' in back.text
    assert CHALLENGED not in paid.text + back.text


async def test_readyz_answers_with_the_database_up(platform: Platform) -> None:
    async with platform.client() as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def _scraper(platform: Platform) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.services.metrics_token.decode()}"}


async def _samples(client: httpx.AsyncClient, scraper: dict[str, str]) -> dict[tuple[str, str, str, str], float]:
    """(sample name, method, route, status) -> value of the HTTP metrics."""
    response = await client.get("/metrics", headers=scraper)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name in {"bastion_http_requests_total", "bastion_http_request_duration_seconds_count"}:
                labels = sample.labels
                samples[sample.name, labels["method"], labels["route"], labels["status"]] = sample.value
    return samples


async def test_metrics_are_labelled_by_route_template_and_status(platform: Platform, merchant: Credentials) -> None:
    template = "/v1/customers/{customer_id}"
    unknown_path = f"/v1/unknown-{new_id('req')}"
    async with platform.client(merchant) as client:
        customer = (await client.post("/v1/customers", json={})).json()
        before = await _samples(client, _scraper(platform))
        assert (await client.get(f"/v1/customers/{customer['id']}")).status_code == 200
        assert (await client.get(f"/v1/customers/{new_id('cus')}")).status_code == 404
        assert (await client.get(unknown_path)).status_code == 404
        after = await _samples(client, _scraper(platform))
        exposition = (await client.get("/metrics", headers=_scraper(platform))).text
    for name in ("bastion_http_requests_total", "bastion_http_request_duration_seconds_count"):
        for route, status in ((template, "200"), (template, "404"), ("unmatched", "404")):
            key = (name, "GET", route, status)
            assert after[key] - before.get(key, 0.0) == 1.0, key
    # Raw ids and unknown paths never become labels: they would explode the series count.
    assert customer["id"] not in exposition
    assert unknown_path not in exposition


async def test_lists_reject_unknown_query_parameters(platform: Platform, merchant: Credentials) -> None:
    lists = [
        str(context.path)
        for context in served_routes(platform.app)
        if isinstance(context.original_route, APIRoute)
        and route_scope(context.original_route) is not None
        and "GET" in (context.methods or ())
        and "{" not in str(context.path)
    ]
    assert {"/v1/customers", "/v1/events"} <= set(lists)
    async with platform.client(merchant) as client:
        for path in lists:
            # The balance, the risk settings and the live routing rules are one object each, and the
            # risk attributes and the connectors whole catalogues: they take no `limit` either.
            single = {"/v1/balance", "/v1/risk/settings", "/v1/risk/attributes", "/v1/connectors", "/v1/routing_rules/live"}
            paged = {} if path in single else {"limit": 5}
            response = await client.get(path, params={**paged, "emial": "jenny@example.com"})
            assert response.status_code == 400, (path, response.text)
            error = response.json()["error"]
            assert (error["code"], error["param"]) == ("parameter_unknown", "emial")
            assert "emial" in error["message"]
        known = await client.get("/v1/customers", params={"limit": 5, "email": "jenny@example.com"})
        assert known.status_code == 200, known.text
        events = await client.get("/v1/events", params={"limit": 5, "type": "customer.created"})
        assert events.status_code == 200, events.text
