"""The card vault and payments in a real browser: Debian's chromium driven by Playwright.

A shopper types a test card into the vault's fields, framed by a merchant page on another
origin; the merchant gets a token and pays the order with it through the sandbox acquirer; a
declined card shows its message; a card whose issuer asks for 3-D Secure takes the browser to
the acquirer's challenge page and back to the shop, which shows the outcome. Then the card
number is looked for everywhere outside the vault: the merchant page's DOM and JavaScript state, the API's
tables, events and logs (with `bastion vault scan-pan`). A third origin's messages to the
merchant page and to the fields are ignored. A page on an origin the merchant never
registered gets no fields, and `origin_not_allowed` from bastion.js within seconds. The demo
checkout reads well on a phone.
"""

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from playwright.async_api import Browser, Frame, Page, Route, ViewportSize

from bastion import bootstrap
from bastion.platform.db import plain_dsn
from bastion.platform.settings import Settings
from tests.support.cli import run_bastion
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase, free_port, running_api_process
from tests.support.vault import CHALLENGED

# Not 4242 4242 4242 4242: the demo checkout names that test card in its own text.
PAN = "5555555555554444"
PAN_TYPED = "5555 5555 5555 4444"
TIMEOUT_MS = 20_000
# bastion.js's FRAME_READY_TIMEOUT_MS (docs/vault-fields.md): how long after its frame loaded
# it waits for the fields before it rejects with `origin_not_allowed`.
FRAME_READY_TIMEOUT_S = 5
# An iPhone 12 to 15's screen, in CSS pixels.
PHONE_VIEWPORT = ViewportSize(width=390, height=844)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(
    settings: Settings, test_database: TestDatabase, acquirer: ApiProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiProcess, Path]]:
    """A real API process with the demo shop, whose logs also go to a directory of their own, for
    the scan. The shop exists before the API starts, as under `serve`: its keys are in the API's grant.
    It listens where the session's acquirer sends its notifications (the outcome of a challenge)."""
    logs = tmp_path_factory.mktemp("api-logs")
    port = test_database.api_port
    asyncio.run(bootstrap.demo_shop_create(settings, test_database.owner_url, f"http://127.0.0.1:{port}"))
    with running_api_process(test_database, {"BASTION_LOG_DIR": str(logs), "BASTION_DEMO": "on"}, port=port) as process:
        yield process, logs


@contextmanager
def _pages_server(pages: dict[str, str]) -> Iterator[str]:
    """A static HTTP server on 127.0.0.1, an origin of its own for test pages; yields the origin."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0])
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write((body or "").encode())

        def log_message(self, *_args: Any) -> None:  # quiet: the test prints what matters
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def _fill_card(fields: Frame, number: str = PAN_TYPED) -> None:
    # Typed key by key, like a shopper: the behavioural signals see real keystrokes.
    await fields.locator("#card-number").press_sequentially(number, delay=15)
    await fields.locator("#card-expiry").press_sequentially("12 / 40", delay=10)
    await fields.locator("#card-cvc").press_sequentially("123", delay=10)
    await fields.locator("#card-name").press_sequentially("Ada Lovelace", delay=5)


async def _vault_frame(page: Page, vault_url: str) -> Frame:
    await page.wait_for_selector("iframe", timeout=TIMEOUT_MS)
    for _ in range(100):
        frame = next((frame for frame in page.frames if frame.url.startswith(vault_url)), None)
        if frame is not None:
            await frame.wait_for_selector("#card-number", timeout=TIMEOUT_MS)
            return frame
        await asyncio.sleep(0.1)
    raise AssertionError(f"no frame from the vault origin among {[frame.url for frame in page.frames]}")


async def _open_checkout(page: Page, api_process: ApiProcess, vault: ApiProcess) -> Frame:
    """The demo checkout, its card fields ready to type in: their frame."""
    await page.goto(f"{api_process.url}/demo/checkout")
    fields = await _vault_frame(page, vault.url)
    # A locator, not wait_for_function: the page's CSP forbids the evaluation that polls with.
    await page.locator("#pay:enabled").wait_for(timeout=TIMEOUT_MS)
    return fields


async def _page_state_without_card(page: Page, number: str = PAN) -> None:
    """The merchant page never holds the card `number`: not in its DOM, its globals, its storage."""
    html = await page.content()
    state = await page.evaluate(
        """() => {
            const seen = [];
            for (const name of Object.getOwnPropertyNames(window)) {
                let value;
                try { value = window[name]; } catch (error) { continue; }
                if (typeof value === "string") seen.push(value);
                else if (value && typeof value === "object" && !(value instanceof Node) && value !== window) {
                    try { seen.push(JSON.stringify(value)); } catch (error) { /* cyclic or host object */ }
                }
            }
            let framed;
            try { framed = String(document.querySelector("iframe").contentDocument); } catch (error) { framed = "blocked"; }
            return {
                globals: seen.join("\\n"),
                storage: JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage}),
                cookies: document.cookie,
                inputs: Array.from(document.querySelectorAll("input")).map((input) => input.value).join("|"),
                framed,
            };
        }"""
    )
    for where, text in [("DOM", html), *state.items()]:
        assert number not in text.replace(" ", "").replace("-", ""), f"card number in the merchant page's {where}"
    assert state["framed"] in ("null", "blocked"), "the merchant page must not reach into the vault's frame"


async def _intent_status(test_database: TestDatabase, intent_id: str) -> tuple[str, int]:
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        row = await connection.fetchrow("SELECT status, amount_received FROM payment_intents WHERE id = $1", intent_id)
    finally:
        await connection.close()
    assert row is not None
    return row["status"], row["amount_received"]


async def _api_rows_without_card(test_database: TestDatabase, payment_method_id: str) -> dict[str, Any]:
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        method = await connection.fetchrow("SELECT * FROM payment_methods WHERE id = $1", payment_method_id)
        event = await connection.fetchval(
            "SELECT data::text FROM events WHERE type = 'payment_method.created' AND data->'object'->>'id' = $1",
            payment_method_id,
        )
        audit = await connection.fetchval("SELECT after_state::text FROM audit_events WHERE resource_id = $1", payment_method_id)
    finally:
        await connection.close()
    assert method is not None
    assert event is not None, "the exchange emitted its event"
    assert audit is not None, "the exchange wrote its audit row"
    for text in (json.dumps(dict(method), default=str), event, audit):
        assert PAN not in text
    return dict(method)


async def test_demo_checkout_pays_through_the_vault_and_the_card_never_leaves_it(
    *,
    browser: Browser,
    platform: Platform,
    settings: Settings,
    test_database: TestDatabase,
    vault: ApiProcess,
    api: tuple[ApiProcess, Path],
) -> None:
    api_process, logs = api
    context = await browser.new_context()
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    fields = await _open_checkout(page, api_process, vault)

    await _fill_card(fields)
    await page.click("#pay")
    await page.wait_for_selector("#result:not([hidden])", timeout=TIMEOUT_MS)
    payment_method_id = await page.text_content("#result-payment-method")
    assert payment_method_id is not None
    assert payment_method_id.startswith("pm_")
    intent_id = await page.text_content("#result-id")
    assert intent_id is not None
    assert intent_id.startswith("pi_")
    assert await page.text_content("#result-amount") == "€29.50"
    assert await page.text_content("#result-last4") == "4444"
    assert await page.text_content("#result-brand") == "mastercard"
    assert await _intent_status(test_database, intent_id) == ("succeeded", 2950)
    assert await fields.input_value("#card-number") == "", "the fields forget the number once tokenized"

    await _page_state_without_card(page)
    assert not any(PAN in line.replace(" ", "") for line in console)
    method = await _api_rows_without_card(test_database, payment_method_id)
    signals = json.loads(method["signals"]) if isinstance(method["signals"], str) else method["signals"]
    assert signals["behaviour"]["keystroke_count"] >= 16
    assert signals["behaviour"]["pasted"] is False
    assert signals["behaviour"]["inter_key_interval_ms"]["mean"] > 0
    assert signals["device"]["timezone"]
    assert len(signals["device"]["user_agent_sha256"]) == 64
    assert signals["client"] == {"ip_address": "127.0.0.1"}, "the address the vault saw the fields from"
    await context.close()

    # The suite's scan for card numbers, after the browser flows: the API schema (events
    # included) and the logs of the API process that served them.
    scanned = await run_bastion("vault", "scan-pan", "--logs", str(logs), env=test_database.env())
    assert scanned.returncode == 0, scanned.stdout + scanned.stderr
    assert "no card numbers found" in scanned.stdout
    assert (logs / "api.log").stat().st_size > 0, "the scan read a log that exists"


async def test_a_declined_card_shows_its_message_and_the_shopper_can_pay_with_another(
    *, browser: Browser, test_database: TestDatabase, vault: ApiProcess, api: tuple[ApiProcess, Path]
) -> None:
    api_process, _logs = api
    context = await browser.new_context()
    try:
        page = await context.new_page()
        fields = await _open_checkout(page, api_process, vault)
        await _fill_card(fields, "4000 0000 0000 9995")
        await page.click("#pay")
        await page.locator("#error", has_text="insufficient funds").wait_for(timeout=TIMEOUT_MS)
        assert await page.text_content("#error") == "Your card has insufficient funds."
        assert await page.locator("#result").is_hidden()
        await page.locator("#pay:enabled").wait_for(timeout=TIMEOUT_MS)
        await _fill_card(fields, "4242 4242 4242 4242")
        await page.click("#pay")
        await page.wait_for_selector("#result:not([hidden])", timeout=TIMEOUT_MS)
        assert await page.text_content("#error") == ""
        # One order, one payment.
        assert await page.locator("#pay").is_disabled()
        assert (await page.text_content("#pay") or "").strip() == "Paid"
        intent_id = await page.text_content("#result-id") or ""
        assert await _intent_status(test_database, intent_id) == ("succeeded", 2950)
    finally:
        await context.close()


@asynccontextmanager
async def _back_from_three_d_secure(
    browser: Browser, test_database: TestDatabase, vault: ApiProcess, api_process: ApiProcess, outcome: str
) -> AsyncIterator[tuple[Page, str]]:
    """A shopper pays the demo order with the challenged card, answers the acquirer's challenge
    with the button named `outcome` and comes back to the shop: that page, and the intent's id
    from the URL it came back to."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        fields = await _open_checkout(page, api_process, vault)
        await _fill_card(fields, "4000 0027 6000 3184")
        await page.click("#pay")
        challenges = f"http://127.0.0.1:{test_database.acquirer_pages_port}/challenges/acqp_*"
        await page.wait_for_url(challenges, timeout=TIMEOUT_MS)
        assert "ending in 3184" in await page.locator("main").inner_text()
        await page.get_by_role("button", name=outcome).click(timeout=TIMEOUT_MS)
        await page.wait_for_url(f"{api_process.url}/demo/checkout/complete?*", timeout=TIMEOUT_MS)
        query = parse_qs(urlsplit(page.url).query)
        assert query["redirect_status"] == ["succeeded" if outcome == "Complete authentication" else "failed"]
        await _page_state_without_card(page, CHALLENGED)
        yield page, query["payment_intent"][0]
    finally:
        await context.close()


async def test_a_card_with_3d_secure_pays_once_the_shopper_completes_the_issuers_challenge(
    *, browser: Browser, test_database: TestDatabase, vault: ApiProcess, api: tuple[ApiProcess, Path]
) -> None:
    api_process, logs = api
    outcome = "Complete authentication"
    async with _back_from_three_d_secure(browser, test_database, vault, api_process, outcome) as (page, intent_id):
        # The acquirer's notification reached the API before the browser came back: paid at once.
        assert await page.title() == "Paid: Bastion demo shop"
        assert await page.text_content("#result-heading") == "Paid: thank you for your order"
        assert await page.text_content("#result-amount") == "€29.50"
        assert await page.text_content("#result-last4") == "3184"
        assert await page.text_content("#result-id") == intent_id
        # And back to the shop, to buy again.
        await page.get_by_role("link", name="Back to the shop").click(timeout=TIMEOUT_MS)
        await page.locator("#pay:enabled").wait_for(timeout=TIMEOUT_MS)
    assert await _intent_status(test_database, intent_id) == ("succeeded", 2950)
    assert CHALLENGED not in (logs / "api.log").read_text() + api_process.logs()


async def test_a_failed_3d_secure_challenge_shows_the_authentication_failure(
    *, browser: Browser, test_database: TestDatabase, vault: ApiProcess, api: tuple[ApiProcess, Path]
) -> None:
    async with _back_from_three_d_secure(browser, test_database, vault, api[0], "Fail authentication") as (page, intent_id):
        assert await page.title() == "Payment failed: Bastion demo shop"
        assert await page.text_content("#outcome-message") == "The cardholder failed the 3-D Secure authentication."
        assert await page.locator("#result").count() == 0
        # Back to the shop, to pay with another card.
        await page.get_by_role("link", name="Try again").click(timeout=TIMEOUT_MS)
        await page.locator("#pay:enabled").wait_for(timeout=TIMEOUT_MS)
    assert await _intent_status(test_database, intent_id) == ("requires_payment_method", 0)


_MERCHANT_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<script src="{vault}/static/bastion.js"></script></head>
<body>
<div id="card-element"></div>
<iframe id="ads" src="{third}/attacker.html" title="ads"></iframe>
<script>
  window.seenMessages = [];
  window.addEventListener("message", (event) => window.seenMessages.push(event.origin));
  window.card = Bastion("{publishable}").mountCard("#card-element");
</script>
</body></html>
"""
# A frame from a third origin on the merchant page (an ad gone bad) that knows the id of the
# pending tokenize() (the test hands it over: real ids are random): it tells the merchant page
# that a token arrived for it, and asks the card fields to tokenize under it again.
_ATTACKER_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ads</title></head><body>
<script>
  window.attack = (id) => {
    parent.postMessage({type: "bastion:token", id, token: {id: "tok_forged", card: {last4: "0000"}}}, "*");
    for (let index = 0; index < parent.frames.length; index++) {
      if (parent.frames[index] !== window) parent.frames[index].postMessage({type: "bastion:tokenize", id}, "*");
    }
  };
</script></body></html>
"""
# Run in the card fields' frame: the ids of the tokenize requests that reach it, from anyone.
_RECORD_TOKENIZE_IDS = """() => {
  window.tokenizeIds = [];
  window.addEventListener("message", (event) => {
    if (event.data && event.data.type === "bastion:tokenize") window.tokenizeIds.push([event.origin, event.data.id]);
  });
}"""


async def test_a_third_origin_cannot_forge_tokens_or_trigger_tokenization(
    browser: Browser, platform: Platform, vault: ApiProcess, merchant: Credentials, test_database: TestDatabase
) -> None:
    pages: dict[str, str] = {}
    with _pages_server(pages) as merchant_origin, _pages_server({"/attacker.html": _ATTACKER_PAGE}) as third_origin:
        pages["/shop.html"] = _MERCHANT_PAGE.format(vault=vault.url, third=third_origin, publishable=merchant.publishable)
        await platform.allow_origin(merchant, merchant_origin)
        await _third_origin_attack(
            browser=browser,
            platform=platform,
            vault=vault,
            merchant=merchant,
            test_database=test_database,
            merchant_origin=merchant_origin,
            third_origin=third_origin,
        )


async def _third_origin_attack(
    *,
    browser: Browser,
    platform: Platform,
    vault: ApiProcess,
    merchant: Credentials,
    test_database: TestDatabase,
    merchant_origin: str,
    third_origin: str,
) -> None:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{merchant_origin}/shop.html")
        fields = await _vault_frame(page, vault.url)
        await page.evaluate("window.card.ready")
        await _fill_card(fields)

        attacker = next(frame for frame in page.frames if frame.url.startswith(third_origin))
        await fields.evaluate(_RECORD_TOKENIZE_IDS)
        # The vault's answer waits until the attack is over: the tokenize() stays pending meanwhile.
        attack_over = asyncio.Event()

        async def hold(route: Route) -> None:
            await attack_over.wait()
            await route.continue_()

        await context.route(f"{vault.url}/v1/tokens", hold)
        await page.evaluate(
            """() => {
                window.settled = null;
                window.pending = window.card.tokenize().then((result) => result.token.id);
                window.pending.finally(() => { window.settled = true; });
            }"""
        )
        for _ in range(int(TIMEOUT_MS / 50)):
            received = await fields.evaluate("window.tokenizeIds")
            if received:
                break
            await asyncio.sleep(0.05)
        [(sender, pending_id)] = received
        assert sender == merchant_origin

        await attacker.evaluate("(id) => window.attack(id)", pending_id)
        # Both forged messages arrived, with the right id, and neither was taken.
        for _ in range(int(TIMEOUT_MS / 50)):
            arrived = len(await fields.evaluate("window.tokenizeIds")) == 2
            if arrived and third_origin in await page.evaluate("window.seenMessages"):
                break
            await asyncio.sleep(0.05)
        assert await fields.evaluate("window.tokenizeIds") == [[merchant_origin, pending_id], [third_origin, pending_id]]
        assert third_origin in await page.evaluate("window.seenMessages"), "the forged token reached the merchant page"
        assert await page.evaluate("window.settled") is None, "the forged token did not settle tokenize()"
        attack_over.set()

        token = await page.evaluate("window.pending")
        assert token.startswith("tok_")
        assert token != "tok_forged", "the forged token was ignored"
        assert await _tokens_of(test_database, merchant.merchant_id) == 1, "the third origin's tokenize was ignored"
        async with platform.client(merchant) as client:
            created = await client.post("/v1/payment_methods", json={"type": "card", "card": {"token": token}})
        assert created.status_code == 200, created.text
        await _page_state_without_card(page)
    finally:
        await context.close()


async def test_an_unregistered_origin_gets_no_fields_and_origin_not_allowed_within_seconds(
    browser: Browser, vault: ApiProcess, merchant: Credentials
) -> None:
    pages: dict[str, str] = {}
    with _pages_server(pages) as origin:
        pages["/shop.html"] = _MERCHANT_PAGE.format(vault=vault.url, third=origin, publishable=merchant.publishable)
        context = await browser.new_context()
        try:
            page = await context.new_page()
            started = time.monotonic()
            # Returns once the page and its frames have loaded: the vault's refusal included.
            await page.goto(f"{origin}/shop.html")
            outcomes = await asyncio.wait_for(
                page.evaluate(
                    """async () => {
                        const outcome = (promise) => promise.then(
                            () => "settled", (error) => ({name: error.name, code: error.code, message: error.message}));
                        const early = outcome(window.card.tokenize());  // asked while ready is pending
                        const ready = await outcome(window.card.ready);
                        return {ready, early: await early, late: await outcome(window.card.tokenize())};
                    }"""
                ),
                timeout=FRAME_READY_TIMEOUT_S * 4,
            )
            elapsed_s = time.monotonic() - started
            frame = next((frame for frame in page.frames if frame.url.startswith(vault.url)), None)
            has_fields = frame is not None and await frame.locator("#card-number").count() > 0
        finally:
            await context.close()
    assert not has_fields, "the vault refused the page: no card fields for an origin the merchant never registered"
    # The documented wait after the frame loaded, well short of tokenize()'s 30 s.
    assert elapsed_s < FRAME_READY_TIMEOUT_S + 5, elapsed_s
    for name, outcome in outcomes.items():
        assert outcome["name"] == "BastionError", (name, outcome)
        assert outcome["code"] == "origin_not_allowed", (name, outcome)
        # The page's own origin, ready to paste into the command.
        assert f"bastion merchant origins add --merchant mer_... {origin} " in outcome["message"], (name, outcome)


async def test_the_demo_checkout_reads_well_on_a_390px_phone(
    *, browser: Browser, settings: Settings, test_database: TestDatabase, vault: ApiProcess, api: tuple[ApiProcess, Path]
) -> None:
    api_process, _logs = api
    context = await browser.new_context(viewport=PHONE_VIEWPORT)
    try:
        page = await context.new_page()
        fields = await _open_checkout(page, api_process, vault)
        placeholder = await fields.evaluate(
            """() => {
                const input = document.getElementById("card-number");
                const style = getComputedStyle(input);
                const canvas = document.createElement("canvas").getContext("2d");
                canvas.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
                return {
                    text: canvas.measureText(input.placeholder).width,
                    room: input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight),
                };
            }"""
        )
        assert placeholder["text"] <= placeholder["room"], f"the card number's placeholder is cut: {placeholder}"
        assert (await page.text_content("#pay") or "").strip() == "Pay €29.50"
        _assert_shopper_text(await page.locator("body").inner_text())

        await _fill_card(fields)
        await page.click("#pay")
        await page.wait_for_selector("#result:not([hidden])", timeout=TIMEOUT_MS)
        _assert_shopper_text(await page.locator("body").inner_text())
        overflowing = await page.evaluate(
            """() => ["html", "#result-id", "#result-payment-method", "#result-fingerprint"]
                .map((selector) => document.querySelector(selector))
                .filter((element) => element.scrollWidth > element.clientWidth
                    || element.getBoundingClientRect().right > document.documentElement.clientWidth)
                .map((element) => element.id || element.tagName)"""
        )
        assert overflowing == [], f"wider than the phone's screen: {overflowing}"
    finally:
        await context.close()


def _assert_shopper_text(visible: str) -> None:
    """What the demo shows a shopper: the test card by its number, no bare status word and no
    file of the repository."""
    assert "4242 4242 4242 4242" in visible
    assert not re.search(r"\bready\b", visible, re.IGNORECASE), visible
    assert not re.search(r"\b[a-z_]+/", visible), f"a path in the page's text: {visible}"


async def _tokens_of(test_database: TestDatabase, merchant_id: str) -> int:
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        return int(await connection.fetchval("SELECT count(*) FROM vault.tokens WHERE merchant_id = $1", merchant_id))
    finally:
        await connection.close()


async def test_a_pasted_number_and_a_form_filled_in_a_blink_show_in_the_risk_decision(
    *, browser: Browser, test_database: TestDatabase, vault: ApiProcess, api: tuple[ApiProcess, Path]
) -> None:
    """The card fields' behaviour signals reach the risk engine's decision: the number pasted,
    the form completed faster than a person could."""
    api_process, _logs = api
    context = await browser.new_context()
    try:
        page = await context.new_page()
        fields = await _open_checkout(page, api_process, vault)
        number = fields.locator("#card-number")
        await number.dispatch_event("paste")
        await number.fill(PAN_TYPED)
        await fields.locator("#card-expiry").press_sequentially("12 / 40", delay=0)
        await fields.locator("#card-cvc").press_sequentially("123", delay=0)
        await fields.locator("#card-name").press_sequentially("Ada Lovelace", delay=0)
        await page.click("#pay")
        await page.wait_for_selector("#result:not([hidden])", timeout=TIMEOUT_MS)
        intent_id = await page.text_content("#result-id") or ""
    finally:
        await context.close()
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        values = await connection.fetchval(
            "SELECT attributes->'values' FROM risk_decisions WHERE payment_intent_id = $1", intent_id
        )
    finally:
        await connection.close()
    decided = json.loads(values) if isinstance(values, str) else values
    assert decided["is_pasted_card_number"] is True
    assert float(decided["checkout_seconds"]) < 3
    assert decided["bot_likelihood"] >= 40, decided
    assert PAN not in json.dumps(decided)
