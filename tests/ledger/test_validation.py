"""Bad input to the ledger over HTTP: every case is a 4xx that names the offending param
(brackets style, `entries[3][postings][0][account]`) with a stable code, and writes
nothing: no entry, no posting, no hold, no balance moved, for the merchant or anyone.
Also the hold expiry job, and the wall between merchants and the platform's accounts."""

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bastion import ledger
from bastion.kernel.ids import new_id
from bastion.platform.db import Actor, Database, Tenant
from tests.support.ledger import create_account, get_balance, transfer
from tests.support.platform import Credentials, Platform

_ENTRIES = "/v1/ledger/entries"
_EXPIRY_WAIT_S = 5.0
_JOURNAL_STATE = """
SELECT 'entry' AS row, id AS key, kind AS value FROM ledger_entries WHERE merchant_id = ANY($1::text[])
UNION ALL
SELECT 'posting', entry_id || '/' || idx, account_id || ' ' || amount_minor
FROM ledger_postings WHERE merchant_id = ANY($1::text[])
UNION ALL
SELECT 'hold', entry_id, expires_at::text FROM ledger_open_holds WHERE merchant_id = ANY($1::text[])
UNION ALL
SELECT 'balance', account_id || '/' || stripe,
    concat_ws(' ', debits_posted, credits_posted, debits_pending, credits_pending, closed)
FROM ledger_balances WHERE merchant_id = ANY($1::text[]) OR account_id = ANY($2::text[])
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Books:
    """A merchant's accounts, and one of another merchant's, with a deposit of 1,000."""

    merchant_id: str
    other_merchant_id: str
    cash: str  # USD asset
    wallet: str  # USD liability that may not go below zero; holds the deposit
    euros: str  # EUR asset
    fx_usd: str  # USD exchange account
    fx_eur: str  # EUR exchange account
    closed: str  # USD, closed
    foreign: str  # another merchant's USD account
    deposit: str  # entry, reference "deposit-1"
    extra: tuple[str, ...] = ()  # platform accounts a test made

    async def state(self, platform: Platform) -> list[tuple[str, str, str]]:
        """Every journal, hold and balance row of both merchants (and of `extra`), read as the owner."""
        async with platform.owner.transaction() as connection:
            rows = await connection.fetch(_JOURNAL_STATE, [self.merchant_id, self.other_merchant_id], list(self.extra))
        return [tuple(row) for row in rows]


@pytest.fixture
async def books(platform: Platform, merchant: Credentials) -> Books:
    other = await platform.merchant(name="Merchant B")
    async with platform.client(other) as client:
        foreign = await create_account(client)
    async with platform.client(merchant) as client:
        cash = await create_account(client)
        wallet = await create_account(client, type="liability", flags={"debits_must_not_exceed_credits": True})
        euros = await create_account(client, "EUR")
        fx_usd = await create_account(client, type="equity", exchange=True)
        fx_eur = await create_account(client, "EUR", type="equity", exchange=True)
        closed = await create_account(client)
        assert (await client.post(f"/v1/ledger/accounts/{closed}/close")).status_code == 200
        deposit = await client.post(_ENTRIES, json=transfer(cash, wallet, 1_000, reference="deposit-1"))
        assert deposit.status_code == 200, deposit.text
    return Books(
        merchant.merchant_id, other.merchant_id, cash, wallet, euros, fx_usd, fx_eur, closed, foreign, deposit.json()["id"]
    )


async def _refused(
    platform: Platform, books: Books, client: httpx.AsyncClient, method: str, path: str, **request: Any
) -> dict[str, Any]:
    """Send a request that must be refused; the error body, once it is clear nothing was written."""
    before = await books.state(platform)
    response = await client.request(method, path, **request)
    assert 400 <= response.status_code < 500, response.text
    assert await books.state(platform) == before, "a refused request must write nothing"
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["request_id"] == response.headers["Request-Id"]
    return error | {"status": response.status_code}


def _posting(account: str, direction: str, amount: Any, currency: str = "USD", **fields: Any) -> dict[str, Any]:
    return {"account": account, "direction": direction, "amount_minor": amount, "currency": currency, **fields}


def _conversion(b: Books, *, through_exchange: bool = True) -> list[dict[str, Any]]:
    """100 USD from cash into 90 EUR on the euros account, through the exchange accounts (or not)."""
    usd, eur = (b.fx_usd, b.fx_eur) if through_exchange else (b.wallet, b.euros)
    return [
        _posting(b.cash, "debit", 100),
        _posting(usd, "credit", 100),
        _posting(eur, "debit", 90, "EUR"),
        _posting(b.euros, "credit", 90, "EUR"),
    ]


def _fx(rate: str) -> dict[str, Any]:
    return {"from_currency": "USD", "to_currency": "EUR", "rate": rate, "source": "test", "quoted_at": int(time.time())}


Body = Callable[[Books], dict[str, Any]]
EntryCase = tuple[str, Body, str, str]
_ENTRY_CASES: list[EntryCase] = [
    (
        "unbalanced",
        lambda b: {"postings": [_posting(b.cash, "debit", 100), _posting(b.wallet, "credit", 90)]},
        "postings",
        "entry_unbalanced",
    ),
    ("unknown-account", lambda b: transfer(b.cash, new_id("la"), 100), "postings[1][account]", "account_missing"),
    ("malformed-account", lambda b: transfer("cash", b.wallet, 100), "postings[0][account]", "account_missing"),
    ("another-merchants-account", lambda b: transfer(b.cash, b.foreign, 100), "postings[1][account]", "account_missing"),
    ("closed-account", lambda b: transfer(b.closed, b.wallet, 100), "postings[0][account]", "account_closed"),
    (
        "currency-mismatch",
        lambda b: {"postings": [_posting(b.cash, "debit", 100, "EUR"), _posting(b.euros, "credit", 100, "EUR")]},
        "postings[0][currency]",
        "currency_mismatch",
    ),
    ("zero-amount", lambda b: transfer(b.cash, b.wallet, 0), "postings[0][amount_minor]", "parameter_invalid"),
    ("negative-amount", lambda b: transfer(b.cash, b.wallet, -5), "postings[0][amount_minor]", "parameter_invalid"),
    ("amount-2^63", lambda b: transfer(b.cash, b.wallet, 2**63), "postings[0][amount_minor]", "parameter_invalid"),
    ("amount-as-string", lambda b: transfer(b.cash, b.wallet, "100"), "postings[0][amount_minor]", "parameter_invalid"),
    ("amount-with-a-fraction", lambda b: transfer(b.cash, b.wallet, 100.5), "postings[0][amount_minor]", "parameter_invalid"),
    ("one-posting", lambda b: {"postings": [_posting(b.cash, "debit", 100)]}, "postings", "parameter_invalid"),
    (
        "129-postings",
        lambda b: {"postings": [_posting(b.cash, "debit", 128)] + [_posting(b.wallet, "credit", 1)] * 128},
        "postings",
        "parameter_invalid",
    ),
    ("unknown-field", lambda b: transfer(b.cash, b.wallet, 100, memo="x"), "memo", "parameter_unknown"),
    (
        "unknown-posting-field",
        lambda b: {"postings": [_posting(b.cash, "debit", 100, memo="x"), _posting(b.wallet, "credit", 100)]},
        "postings[0][memo]",
        "parameter_unknown",
    ),
    ("two-currencies-without-fx", lambda b: {"postings": _conversion(b)}, "fx", "fx_required"),
    ("fx-at-a-wrong-rate", lambda b: {"postings": _conversion(b), "fx": _fx("0.5")}, "fx[rate]", "fx_rate_mismatch"),
    ("fx-rate-not-a-number", lambda b: {"postings": _conversion(b), "fx": _fx("cheap")}, "fx[rate]", "parameter_invalid"),
    (
        "two-currencies-without-an-exchange-account",
        lambda b: {"postings": _conversion(b, through_exchange=False), "fx": _fx("0.9")},
        "postings",
        "exchange_account_required",
    ),
    ("limit-breach", lambda b: transfer(b.wallet, b.cash, 1_001), "postings[0]", "exceeds_credits"),
    (
        "limit-breach-by-a-hold",
        lambda b: transfer(b.wallet, b.cash, 1_001, pending=True),
        "postings[0]",
        "exceeds_credits",
    ),
    ("timeout-without-pending", lambda b: transfer(b.cash, b.wallet, 100, timeout_s=60), "timeout_s", "timeout_without_hold"),
    (
        "effective-at-in-the-future",
        lambda b: transfer(b.cash, b.wallet, 100, effective_at=int(time.time()) + 3600),
        "effective_at",
        "effective_at_future",
    ),
    (
        "reference-reused-with-another-amount",
        lambda b: transfer(b.cash, b.wallet, 1_001, reference="deposit-1"),
        "postings[0][amount_minor]",
        "reference_reused",
    ),
    (
        "reference-reused-with-another-account",
        lambda b: transfer(b.euros, b.wallet, 1_000, reference="deposit-1"),
        "postings[0][account]",
        "reference_reused",
    ),
    (
        "reference-reused-with-a-description",
        lambda b: transfer(b.cash, b.wallet, 1_000, reference="deposit-1", description="changed"),
        "description",
        "reference_reused",
    ),
    (
        "reference-reused-for-a-hold",
        lambda b: transfer(b.cash, b.wallet, 1_000, reference="deposit-1", pending=True),
        "pending",
        "reference_reused",
    ),
]


@pytest.mark.parametrize("case", _ENTRY_CASES, ids=lambda case: case[0])
async def test_bad_entries_are_named(platform: Platform, merchant: Credentials, books: Books, case: EntryCase) -> None:
    _, body, param, code = case
    async with platform.client(merchant) as client:
        error = await _refused(platform, books, client, "POST", _ENTRIES, json=body(books))
    assert (error["status"], error["param"], error["code"]) == (400, param, code), error


def _entries(count: int, b: Books) -> list[dict[str, Any]]:
    return [transfer(b.cash, b.wallet, index + 1) for index in range(count)]


# (index, code, param) of each rejected entry, or None for a rejection of the body as a whole.
BatchCase = tuple[str, Body, str, str, list[tuple[int, str, str]] | None]
_BATCH_CASES: list[BatchCase] = [
    ("8001-entries", lambda b: {"entries": _entries(8_001, b)}, "entries", "parameter_invalid", None),
    (
        "batch-of-one",
        lambda b: {"entries": [transfer(b.cash, b.foreign, 5)]},
        "entries[0][postings][1][account]",
        "batch_rejected",
        [(0, "account_missing", "postings[1][account]")],
    ),
    ("no-entries", lambda b: {"entries": []}, "entries", "parameter_invalid", None),
    (
        "entry-3-of-5-unknown-account",
        lambda b: {"entries": [*_entries(3, b), transfer(new_id("la"), b.wallet, 5), *_entries(1, b)]},
        "entries[3][postings][0][account]",
        "batch_rejected",
        [(3, "account_missing", "postings[0][account]")],
    ),
    (
        "entries-1-and-3-of-5",
        lambda b: {
            "entries": [
                *_entries(1, b),
                transfer(b.closed, b.wallet, 5),
                *_entries(1, b),
                transfer(b.wallet, b.cash, 9_999),
                *_entries(1, b),
            ]
        },
        "entries[1][postings][0][account]",
        "batch_rejected",
        [(1, "account_closed", "postings[0][account]"), (3, "exceeds_credits", "postings[0]")],
    ),
    (
        # The batch as a whole breaks the limit, though each entry alone would not.
        "limit-breached-by-the-batch-together",
        lambda b: {"entries": [transfer(b.wallet, b.cash, 600), transfer(b.wallet, b.cash, 600)]},
        "entries[1][postings][0]",
        "batch_rejected",
        [(1, "exceeds_credits", "postings[0]")],
    ),
    (
        "reference-twice-in-one-batch",
        lambda b: {"entries": [transfer(b.cash, b.wallet, 1, reference="r"), transfer(b.cash, b.wallet, 2, reference="r")]},
        "entries[1][reference]",
        "batch_rejected",
        [(1, "reference_duplicated", "reference")],
    ),
    (
        "entry-2-amount-as-string",
        lambda b: {"entries": [*_entries(2, b), transfer(b.cash, b.wallet, "5"), *_entries(2, b)]},
        "entries[2][postings][0][amount_minor]",
        "parameter_invalid",
        None,
    ),
]


@pytest.mark.parametrize("case", _BATCH_CASES, ids=lambda case: case[0])
async def test_bad_batches_write_nothing(platform: Platform, merchant: Credentials, books: Books, case: BatchCase) -> None:
    _, body, param, code, results = case
    async with platform.client(merchant) as client:
        error = await _refused(platform, books, client, "POST", f"{_ENTRIES}/batch", json=body(books))
    assert (error["status"], error["param"], error["code"]) == (400, param, code), error
    if results is None:
        assert "results" not in error
    else:
        assert [(item["index"], item["code"], item["param"]) for item in error["results"]] == results


# --- holds and reversals ----------------------------------------------------------------

Setup = Callable[[httpx.AsyncClient, Books], Awaitable[str]]


async def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _hold(client: httpx.AsyncClient, b: Books) -> str:
    hold_id: str = (await _ok(await client.post(_ENTRIES, json=transfer(b.wallet, b.cash, 300, pending=True))))["id"]
    return hold_id


async def _posted_hold(client: httpx.AsyncClient, b: Books) -> str:
    hold_id = await _hold(client, b)
    await _ok(await client.post(f"{_ENTRIES}/{hold_id}/post", json={}))
    return hold_id


async def _voided_hold(client: httpx.AsyncClient, b: Books) -> str:
    hold_id = await _hold(client, b)
    await _ok(await client.post(f"{_ENTRIES}/{hold_id}/void"))
    return hold_id


async def _reversed_deposit(client: httpx.AsyncClient, b: Books) -> str:
    await _ok(await client.post(f"{_ENTRIES}/{b.deposit}/reverse", json={}))
    return b.deposit


async def _deposit(_client: httpx.AsyncClient, b: Books) -> str:
    return b.deposit


StateCase = tuple[str, Setup, str, dict[str, Any] | None, str, str]
_STATE_CASES: list[StateCase] = [
    ("post-a-hold-twice", _posted_hold, "post", {}, "id", "hold_already_posted"),
    ("void-a-posted-hold", _posted_hold, "void", None, "id", "hold_already_posted"),
    ("void-a-hold-twice", _voided_hold, "void", None, "id", "hold_already_voided"),
    ("post-a-voided-hold", _voided_hold, "post", {"amount_minor": 100}, "id", "hold_already_voided"),
    ("post-more-than-held", _hold, "post", {"amount_minor": 301}, "amount_minor", "amount_exceeds_pending"),
    ("post-zero", _hold, "post", {"amount_minor": 0}, "amount_minor", "parameter_invalid"),
    ("post-an-entry-that-is-no-hold", _deposit, "post", {}, "id", "entry_not_pending"),
    ("reverse-twice", _reversed_deposit, "reverse", {}, "id", "entry_already_reversed"),
    ("reverse-a-hold", _hold, "reverse", {}, "id", "entry_is_hold"),
    ("reverse-with-an-unknown-field", _deposit, "reverse", {"amount_minor": 5}, "amount_minor", "parameter_unknown"),
]


@pytest.mark.parametrize("case", _STATE_CASES, ids=lambda case: case[0])
async def test_holds_and_reversals_in_the_wrong_state(
    platform: Platform, merchant: Credentials, books: Books, case: StateCase
) -> None:
    _, setup, action, body, param, code = case
    async with platform.client(merchant) as client:
        entry_id = await setup(client, books)
        error = await _refused(platform, books, client, "POST", f"{_ENTRIES}/{entry_id}/{action}", json=body)
    assert (error["status"], error["param"], error["code"]) == (400, param, code), error


# --- paths and queries ------------------------------------------------------------------

# Paths and query values name the books' objects as {cash}, {euros} and {deposit}.
RequestCase = tuple[str, str, str, dict[str, Any], int, str, str]
_REQUEST_CASES: list[RequestCase] = [
    ("entry", "GET", f"{_ENTRIES}/nonsense", {}, 404, "id", "resource_missing"),
    ("entry-of-another-prefix", "GET", f"{_ENTRIES}/{{cash}}", {}, 404, "id", "resource_missing"),
    ("post", "POST", f"{_ENTRIES}/nonsense/post", {"json": {}}, 404, "id", "resource_missing"),
    ("void", "POST", f"{_ENTRIES}/le_nonsense/void", {}, 404, "id", "resource_missing"),
    ("reverse", "POST", f"{_ENTRIES}/{new_id('le')}/reverse", {"json": {}}, 404, "id", "resource_missing"),
    ("account", "GET", "/v1/ledger/accounts/nonsense", {}, 404, "id", "resource_missing"),
    ("close", "POST", "/v1/ledger/accounts/la_0/close", {}, 404, "id", "resource_missing"),
    ("balance", "GET", "/v1/ledger/accounts/nonsense/balance", {}, 404, "id", "resource_missing"),
    ("statement", "GET", "/v1/ledger/accounts/{deposit}/statement", {}, 404, "id", "resource_missing"),
    ("entries-of-an-account", "GET", _ENTRIES, {"params": {"account": "nonsense"}}, 404, "account", "resource_missing"),
    (
        "balance-as_off",
        "GET",
        "/v1/ledger/accounts/{cash}/balance",
        {"params": {"as_off": 1}},
        400,
        "as_off",
        "parameter_unknown",
    ),
    ("statement-limt", "GET", "/v1/ledger/accounts/{cash}/statement", {"params": {"limt": 5}}, 400, "limt", "parameter_unknown"),
    (
        "as_of-words",
        "GET",
        "/v1/ledger/accounts/{cash}/balance",
        {"params": {"as_of": "yesterday"}},
        400,
        "as_of",
        "parameter_invalid",
    ),
    ("as_of-negative", "GET", "/v1/ledger/accounts/{cash}/balance", {"params": {"as_of": -1}}, 400, "as_of", "parameter_invalid"),
    (
        "as_of-year-10000",
        "GET",
        "/v1/ledger/accounts/{cash}/balance",
        {"params": {"as_of": 253_402_300_800}},
        400,
        "as_of",
        "parameter_invalid",
    ),
    (
        "statement-after-an-unknown-entry",
        "GET",
        "/v1/ledger/accounts/{cash}/statement",
        {"params": {"starting_after": new_id("le")}},
        404,
        "starting_after",
        "resource_missing",
    ),
    (
        "statement-after-an-entry-of-another-account",
        "GET",
        "/v1/ledger/accounts/{euros}/statement",
        {"params": {"starting_after": "{deposit}"}},
        404,
        "starting_after",
        "resource_missing",
    ),
    (
        "statement-after-nonsense",
        "GET",
        "/v1/ledger/accounts/{cash}/statement",
        {"params": {"starting_after": "nonsense"}},
        404,
        "starting_after",
        "resource_missing",
    ),
]


@pytest.mark.parametrize("case", _REQUEST_CASES, ids=lambda case: case[0])
async def test_bad_paths_and_queries_are_named(
    platform: Platform, merchant: Credentials, books: Books, case: RequestCase
) -> None:
    _, method, path, request_, status, param, code = case
    ids = {"cash": books.cash, "euros": books.euros, "deposit": books.deposit}
    params = {name: str(value).format(**ids) for name, value in request_.get("params", {}).items()}
    async with platform.client(merchant) as client:
        error = await _refused(platform, books, client, method, path.format(**ids), params=params, json=request_.get("json"))
    assert (error["status"], error["param"], error["code"]) == (status, param, code), error


# --- the expiry job ---------------------------------------------------------------------


async def test_an_expired_hold_is_left_out_at_once_and_released_by_the_job(
    platform: Platform, merchant: Credentials, books: Books, worker_database: Database
) -> None:
    async with platform.client(merchant) as client:
        hold = await _ok(await client.post(_ENTRIES, json=transfer(books.wallet, books.cash, 400, pending=True, timeout_s=1)))
        held = await get_balance(client, books.wallet)
        assert (held["posted"], held["pending"], held["available"]) == (1_000, -400, 600)

        deadline = time.monotonic() + _EXPIRY_WAIT_S
        await asyncio.sleep(1.2)
        while (await _ok(await client.get(f"{_ENTRIES}/{hold['id']}")))["status"] != "expired":
            assert time.monotonic() < deadline, "the hold did not expire"
            await asyncio.sleep(0.1)
        # Before the job: reads leave the hold out, though its balance row still carries it.
        released = await get_balance(client, books.wallet)
        assert (released["posted"], released["pending"], released["available"], released["debits_pending"]) == (
            1_000,
            0,
            1_000,
            0,
        )
        async with platform.owner.transaction() as connection:
            stored = "SELECT debits_pending FROM ledger_balances WHERE account_id = $1"
            assert await connection.fetchval(stored, books.wallet) == 400
        early = await client.post(f"{_ENTRIES}/{hold['id']}/post", json={})
        assert (early.status_code, early.json()["error"]["code"]) == (400, "hold_expired")

        assert await ledger.expire_due_holds(worker_database) >= 1

        expired = await _ok(await client.get(f"{_ENTRIES}/{hold['id']}"))
        assert expired["status"] == "expired"
        assert expired["resolved_by"] is not None
        resolution = await _ok(await client.get(f"{_ENTRIES}/{expired['resolved_by']}"))
        assert (resolution["type"], resolution["pending_entry"], resolution["postings"]) == ("expire_pending", hold["id"], [])
        async with platform.owner.transaction() as connection:
            assert await connection.fetchval(stored, books.wallet) == 0
        assert await get_balance(client, books.wallet) == released
        error = await _refused(platform, books, client, "POST", f"{_ENTRIES}/{hold['id']}/post", json={})
        assert (error["status"], error["param"], error["code"]) == (400, "id", "hold_already_expired")
        error = await _refused(platform, books, client, "POST", f"{_ENTRIES}/{hold['id']}/void")
        assert error["code"] == "hold_already_expired"


# --- the platform's accounts ------------------------------------------------------------


async def test_the_merchant_api_does_not_reach_platform_accounts(platform: Platform, merchant: Credentials, books: Books) -> None:
    async with platform.owner.unit_of_work(Tenant(ledger.PLATFORM_MERCHANT_ID, livemode=False), Actor(id="test")) as uow:
        created = await ledger.create_account(uow, ledger.AccountDraft(currency="USD", type=ledger.AccountType.REVENUE))
    fees: str = created["id"]
    books = dataclasses.replace(books, extra=(fees,))
    async with platform.client(merchant) as client:
        error = await _refused(platform, books, client, "POST", _ENTRIES, json=transfer(books.cash, fees, 100))
        assert (error["param"], error["code"]) == ("postings[1][account]", "account_missing")
        batch = {"entries": [transfer(books.cash, books.wallet, 1), transfer(fees, books.wallet, 1)]}
        error = await _refused(platform, books, client, "POST", f"{_ENTRIES}/batch", json=batch)
        assert (error["param"], error["results"][0]["code"]) == ("entries[1][postings][0][account]", "account_missing")
        for path in (
            f"/v1/ledger/accounts/{fees}",
            f"/v1/ledger/accounts/{fees}/balance",
            f"/v1/ledger/accounts/{fees}/statement",
        ):
            error = await _refused(platform, books, client, "GET", path)
            assert (error["status"], error["param"], error["code"]) == (404, "id", "resource_missing")
        error = await _refused(platform, books, client, "POST", f"/v1/ledger/accounts/{fees}/close")
        assert (error["status"], error["code"]) == (404, "resource_missing")
        listed = await _ok(await client.get("/v1/ledger/accounts", params={"limit": 100}))
        assert fees not in {account["id"] for account in listed["data"]}


async def test_the_merchant_api_does_not_resolve_or_reverse_platform_entries(
    platform: Platform, merchant: Credentials, books: Books
) -> None:
    """Entries the facade wrote onto the platform's accounts (fees) are the writer's to undo:
    the merchant's API refuses to reverse them or to post or void their holds, and writes nothing."""
    async with platform.owner.unit_of_work(Tenant(ledger.PLATFORM_MERCHANT_ID, livemode=False), Actor(id="test")) as uow:
        created = await ledger.create_account(uow, ledger.AccountDraft(currency="USD", type=ledger.AccountType.REVENUE))
    fees: str = created["id"]
    books = dataclasses.replace(books, extra=(fees,))
    async with platform.services.database.unit_of_work(Tenant(merchant.merchant_id, livemode=False), Actor(id="test")) as uow:
        fee = ledger.EntryDraft(
            postings=(ledger.PostingDraft(books.wallet, "debit", 30, "USD"), ledger.PostingDraft(fees, "credit", 30, "USD"))
        )
        charged = await ledger.post_entry(uow, fee, platform=True)
        held = await ledger.post_entry(uow, dataclasses.replace(fee, pending=True), platform=True)
    async with platform.client(merchant) as client:
        for path in (f"{_ENTRIES}/{charged['id']}/reverse", f"{_ENTRIES}/{held['id']}/post", f"{_ENTRIES}/{held['id']}/void"):
            before = await books.state(platform)
            response = await client.post(path, json={})
            assert response.status_code == 403, (path, response.text)
            assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("platform_entry", "id")
            assert await books.state(platform) == before, "a refused request must write nothing"
        own = await client.post(_ENTRIES, json=transfer(books.cash, books.wallet, 5))
        assert (await client.post(f"{_ENTRIES}/{own.json()['id']}/reverse", json={})).status_code == 200
    async with platform.services.database.unit_of_work(Tenant(merchant.merchant_id, livemode=False), Actor(id="test")) as uow:
        assert (await ledger.void_pending(uow, held["id"], platform=True))["type"] == "void_pending"
