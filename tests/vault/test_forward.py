"""Forwarding card data to a processor through the vault's mutual-TLS listener: the processor
gets the card, the caller gets the answer with card numbers masked; only allowlisted
connectors, only their host, one deadline; the CVC serves once and never past its hour; the
sweep deletes expired CVCs and abandoned cards.

The processor is a local echo server; a vault of these tests' own forwards to it (the
session's vault has no connectors)."""

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion import bootstrap
from bastion.kernel.errors import ConfigurationError, InvalidRequest, PermissionDenied, ProcessorUnavailable, ResourceMissing
from bastion.kernel.ids import new_id
from bastion.platform.certs import CertPaths, client_ssl_context, init_certs
from bastion.platform.db import Tenant
from bastion.platform.redaction import PAN_MASK
from bastion.platform.settings import Settings
from bastion.platform.vault_client import VaultClient
from bastion.vault import repository, service
from bastion.vault.schemas import Exchange, Forward
from tests.support.asgi import SERVER_STOP_TIMEOUT_S, request_body, serving
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase, free_port, running_vault
from tests.support.vault import (
    NEXT_YEAR,
    VISA,
    settings_for,
    token_id,
    tokenize_in_process,
    vault_card,
    vault_in_process,
)

FORWARD_TIMEOUT_MS = 500
CLIENT_TIMEOUT_S = 5.0
# Well past the forward timeout: a slow processor answers after this long, a dripping one
# keeps sending a byte at shorter intervals (each read comes in time) for this long in all.
PROCESSOR_DELAY_S = 3.0
DRIP_INTERVAL_S = 0.1
ANSWERED_WITHIN_S = 2.0
# The vault's grace for requests in flight (its forward timeout rounded up, plus a second) and
# some room, well below PROCESS_STOP_TIMEOUT_S, after which the harness kills the vault.
STOPPED_WITHIN_S = 6.0
CHARGE = {
    "method": "POST",
    "path": "/charge",
    "headers": {"Content-Type": "application/json"},
    "body": '{"number": "{{card.number}}", "cvc": "{{card.cvc}}", "exp": "{{card.exp_month}}/{{card.exp_year}}"}',
}
WITHOUT_CVC = {**CHARGE, "body": '{"number": "{{card.number}}", "name": "{{card.name}}"}'}
# As if the card had been tokenized an hour and a second ago (a CVC lives an hour).
_AGE_CVC = "UPDATE vault.cvcs SET expires_at = expires_at - interval '1 hour 1 second' WHERE card_id = $1"
_EXPIRE_TOKEN = "UPDATE vault.tokens SET expires_at = now() - interval '1 second' WHERE id = $1"
_EXPIRE_TOKEN_OF_CARD = "UPDATE vault.tokens SET expires_at = now() - interval '1 second' WHERE card_id = $1"
_ROWS_OF = """
SELECT (SELECT count(*) FROM vault.cards WHERE id = $1) AS cards,
       (SELECT count(*) FROM vault.cvcs WHERE card_id = $1) AS cvcs,
       (SELECT count(*) FROM vault.tokens WHERE card_id = $1) AS tokens
"""


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class EchoProcessor:
    """An ASGI processor that records each request and answers with its body, card number
    and all (in a header too): what the vault must mask. `/slow` answers late, `/drip`
    answers a byte at a time."""

    received: list[Received] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await request_body(receive)
        headers = {name.decode(): value.decode() for name, value in scope["headers"]}
        self.received.append(Received(scope["method"], scope["path"], headers, body))
        if scope["path"] == "/slow":
            await asyncio.sleep(PROCESSOR_DELAY_S)
        headers_out = [(b"content-type", b"application/json")]
        start = {"type": "http.response.start", "status": 200, "headers": headers_out}
        if scope["path"] == "/drip":
            await send(start)
            for _ in range(int(PROCESSOR_DELAY_S / DRIP_INTERVAL_S)):
                await send({"type": "http.response.body", "body": b" ", "more_body": True})
                await asyncio.sleep(DRIP_INTERVAL_S)
            await send({"type": "http.response.body", "body": b"{}"})
            return
        received = json.loads(body) if body else {}
        headers_out.append((b"x-request-id", f"req_{received.get('number', '')}".encode()))
        await send(start)
        await send({"type": "http.response.body", "body": json.dumps({"id": "ch_test", "received": received}).encode()})


@pytest.fixture(scope="module")
def processor() -> Iterator[tuple[EchoProcessor, str]]:
    """The echo processor over plain HTTP."""
    app = EchoProcessor()
    with serving(app, name="echo-processor") as port:
        yield app, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def forwarding_vault(test_database: TestDatabase, processor: tuple[EchoProcessor, str]) -> Iterator[str]:
    """A `bastion vault` with the echo processor as connector `echo`, on ports of its own; its internal URL."""
    ports = (free_port(), free_port())
    env = {"BASTION_VAULT_CONNECTORS": f"echo={processor[1]}", "BASTION_VAULT_FORWARD_TIMEOUT_MS": str(FORWARD_TIMEOUT_MS)}
    with running_vault(test_database, env, ports=ports):
        yield f"https://127.0.0.1:{ports[1]}"


@pytest.fixture(scope="module")
async def client(forwarding_vault: str, test_database: TestDatabase) -> AsyncIterator[VaultClient]:
    """The API's client of the vault, with the API's certificate."""
    vault_client = VaultClient(
        forwarding_vault, client_ssl_context(CertPaths.under(test_database.data_dir)), timeout_s=CLIENT_TIMEOUT_S
    )
    yield vault_client
    await vault_client.close()


def _tenant(credentials: Credentials) -> Tenant:
    return Tenant(merchant_id=credentials.merchant_id, livemode=False)


async def test_the_processor_gets_the_card_and_the_caller_gets_it_masked(
    platform: Platform, vault: ApiProcess, merchant: Credentials, client: VaultClient, processor: tuple[EchoProcessor, str]
) -> None:
    echo = processor[0]
    card = await vault_card(platform, vault, merchant)
    answer = await client.forward(_tenant(merchant), card=card, connector="echo", request=CHARGE)

    sent = echo.received[-1]
    assert (sent.method, sent.path, sent.headers["content-type"]) == ("POST", "/charge", "application/json")
    assert json.loads(sent.body) == {"number": VISA, "cvc": "123", "exp": f"12/{NEXT_YEAR}"}
    assert answer["status"] == 200
    assert json.loads(answer["body"])["received"]["number"] == PAN_MASK
    assert answer["headers"]["x-request-id"] == f"req_{PAN_MASK}"
    assert VISA not in json.dumps(answer)
    assert VISA not in json.dumps(answer).replace(" ", "").replace("-", "")

    # The CVC served that one request and is gone; the card itself still forwards.
    async with platform.owner.transaction() as connection:
        assert await connection.fetchval("SELECT count(*) FROM vault.cvcs WHERE card_id = $1", card) == 0
    with pytest.raises(InvalidRequest) as again:
        await client.forward(_tenant(merchant), card=card, connector="echo", request=CHARGE)
    assert again.value.code == "cvc_unavailable"
    assert echo.received[-1] is sent, "nothing went out without the CVC"
    without_cvc = await client.forward(_tenant(merchant), card=card, connector="echo", request=WITHOUT_CVC)
    assert without_cvc["status"] == 200
    assert json.loads(echo.received[-1].body) == {"number": VISA, "name": "Ada Lovelace"}


async def test_only_allowlisted_connectors(
    platform: Platform, vault: ApiProcess, merchant: Credentials, client: VaultClient
) -> None:
    card = await vault_card(platform, vault, merchant)
    with pytest.raises(InvalidRequest) as refused:
        await client.forward(_tenant(merchant), card=card, connector="evil", request=WITHOUT_CVC)
    assert (type(refused.value), refused.value.param) == (InvalidRequest, "connector")


async def test_live_cards_go_only_to_https_connectors(
    client: VaultClient, processor: tuple[EchoProcessor, str], merchant: Credentials
) -> None:
    echo, _url = processor
    received = len(echo.received)
    live = Tenant(merchant.merchant_id, livemode=True)
    with pytest.raises(PermissionDenied) as refused:
        await client.forward(live, card="crd_01M85AAAAAAAAAAAAAAAAAAAAA", connector="echo", request=WITHOUT_CVC)
    assert (refused.value.code, refused.value.param) == ("connector_not_tls", "connector")
    assert len(echo.received) == received, "nothing was sent"


async def test_the_first_forward_of_any_kind_takes_the_cvc(
    platform: Platform, vault: ApiProcess, merchant: Credentials, client: VaultClient
) -> None:
    card = await vault_card(platform, vault, merchant)
    assert (await client.forward(_tenant(merchant), card=card, connector="echo", request=WITHOUT_CVC))["status"] == 200
    async with platform.owner.transaction() as connection:
        assert await connection.fetchval("SELECT count(*) FROM vault.cvcs WHERE card_id = $1", card) == 0
    with pytest.raises(InvalidRequest) as unavailable:
        await client.forward(_tenant(merchant), card=card, connector="echo", request=CHARGE)
    assert unavailable.value.code == "cvc_unavailable"


@pytest.mark.parametrize(
    ("headers", "param"),
    [
        ({"X-Forwarded-For": "10.0.0.1"}, "request[headers][X-Forwarded-For]"),
        ({"Host": "evil.example"}, "request[headers][Host]"),
        ({"Authorization": "Basic {{card.number}}"}, "request[headers][Authorization]"),
        ({"Idempotency-Key": "{{ card.cvc }}"}, "request[headers][Idempotency-Key]"),
    ],
)
async def test_headers_come_from_an_allowlist_and_carry_no_card_data(
    platform: Platform,
    vault: ApiProcess,
    merchant: Credentials,
    client: VaultClient,
    processor: tuple[EchoProcessor, str],
    *,
    headers: dict[str, str],
    param: str,
) -> None:
    card = await vault_card(platform, vault, merchant)
    sent_before = len(processor[0].received)
    with pytest.raises(InvalidRequest) as refused:
        await client.forward(_tenant(merchant), card=card, connector="echo", request={**CHARGE, "headers": headers})
    assert (refused.value.code, refused.value.param) == ("parameter_invalid", param)
    assert len(processor[0].received) == sent_before, "nothing was sent"
    # Refused before the card was read: the CVC is still there for a good request.
    assert (await client.forward(_tenant(merchant), card=card, connector="echo", request=CHARGE))["status"] == 200


async def test_braintrees_api_version_reaches_the_processor(
    platform: Platform, vault: ApiProcess, merchant: Credentials, client: VaultClient, processor: tuple[EchoProcessor, str]
) -> None:
    """The `braintree` package writes its XML for the API version it names in X-ApiVersion."""
    card = await vault_card(platform, vault, merchant)
    headers = {"Content-Type": "application/xml", "X-ApiVersion": "6"}
    answer = await client.forward(_tenant(merchant), card=card, connector="echo", request={**WITHOUT_CVC, "headers": headers})
    assert answer["status"] == 200
    assert processor[0].received[-1].headers["x-apiversion"] == "6"


async def test_the_caller_gets_the_fields_it_asked_for_not_the_raw_answer(
    platform: Platform, vault: ApiProcess, merchant: Credentials, client: VaultClient
) -> None:
    card = await vault_card(platform, vault, merchant)
    fields = {"charge": "/id", "number": "/received/number", "name": "/received/name", "missing": "/nothing/0"}
    answer = await client.forward(_tenant(merchant), card=card, connector="echo", request=WITHOUT_CVC, answer=fields)
    assert answer["status"] == 200
    assert answer["body"] is None
    assert answer["fields"] == {"charge": "ch_test", "number": PAN_MASK, "name": "Ada Lovelace", "missing": None}


async def test_proxy_settings_in_the_environment_are_ignored(
    platform: Platform,
    vault: ApiProcess,
    merchant: Credentials,
    test_database: TestDatabase,
    processor: tuple[EchoProcessor, str],
) -> None:
    """A proxy named in the vault's environment would see every card the vault forwards."""
    card = await vault_card(platform, vault, merchant)
    with _recording_listener() as proxied:
        proxy = f"http://127.0.0.1:{proxied.port}"
        ports = (free_port(), free_port())
        env = {"BASTION_VAULT_CONNECTORS": f"echo={processor[1]}", "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "ALL_PROXY": proxy}
        with running_vault(test_database, env, ports=ports):
            answer = await _forward_through(test_database, ports[1], _tenant(merchant), card, WITHOUT_CVC)
    assert answer["status"] == 200
    assert proxied.connections == 0


async def test_a_pinned_connector_trusts_its_own_ca_only(
    platform: Platform, merchant: Credentials, test_database: TestDatabase, tmp_path: Path
) -> None:
    processor_ca, _ = init_certs(tmp_path / "processor")
    other_ca, _ = init_certs(tmp_path / "other")
    with serving(
        EchoProcessor(), name="echo-processor", ssl_certfile=str(processor_ca.vault_cert), ssl_keyfile=str(processor_ca.vault_key)
    ) as port:
        url = f"https://127.0.0.1:{port}"
        settings = settings_for(
            test_database,
            vault_connectors={"pinned": url, "pinned_elsewhere": url, "system_cas": url},
            vault_connector_cas={"pinned": processor_ca.ca_cert, "pinned_elsewhere": other_ca.ca_cert},
        )
        async with vault_in_process(settings) as vault:
            card = await _bound_card(vault, merchant)
            answers = {}
            for connector in ("pinned", "pinned_elsewhere", "system_cas"):
                forward = Forward.model_validate(
                    {**_tenant_fields(merchant), "connector": connector, "card": card, "request": WITHOUT_CVC}
                )
                try:
                    answers[connector] = (await service.forward(vault, forward))["status"]
                except ProcessorUnavailable as failed:
                    answers[connector] = failed.code
    # A certificate refused in the handshake: no connection, so nothing of the request was sent.
    assert answers == {"pinned": 200, "pinned_elsewhere": "processor_unreachable", "system_cas": "processor_unreachable"}


def _tenant_fields(credentials: Credentials) -> dict[str, Any]:
    return {"merchant_id": credentials.merchant_id, "livemode": False}


async def _bound_card(vault: service.Vault, credentials: Credentials) -> str:
    """A card tokenized and bound to a payment method id in the vault alone."""
    token = await tokenize_in_process(vault, credentials.publishable)
    bound = await service.exchange(vault, Exchange(**_tenant_fields(credentials), payment_method_id=new_id("pm")), token)
    card: str = bound["vault_card_id"]
    return card


@dataclass
class _Listener:
    port: int
    connections: int = 0


@contextmanager
def _recording_listener() -> Iterator[_Listener]:
    """A TCP listener on 127.0.0.1 that counts the connections it gets and closes them."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.1)
    listener = _Listener(port=server.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            listener.connections += 1
            connection.close()

    thread = threading.Thread(target=accept, name="recording-listener", daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        stop.set()
        thread.join(SERVER_STOP_TIMEOUT_S)
        server.close()


async def _forward_through(
    database: TestDatabase, internal_port: int, tenant: Tenant, card: str, request: dict[str, Any]
) -> dict[str, Any]:
    paths = CertPaths.under(database.data_dir)
    vault_client = VaultClient(f"https://127.0.0.1:{internal_port}", client_ssl_context(paths), timeout_s=CLIENT_TIMEOUT_S)
    try:
        return await vault_client.forward(tenant, card=card, connector="echo", request=request)
    finally:
        await vault_client.close()


@pytest.mark.parametrize(
    "path", ["//evil.example/x", "/@evil.example/x", "http://evil.example/x", "/x?to=http://evil.example", "/x#y", "charge"]
)
async def test_the_path_stays_on_the_connectors_host(
    platform: Platform,
    vault: ApiProcess,
    merchant: Credentials,
    client: VaultClient,
    processor: tuple[EchoProcessor, str],
    *,
    path: str,
) -> None:
    card = await vault_card(platform, vault, merchant)
    sent_before = len(processor[0].received)
    with pytest.raises(InvalidRequest) as refused:
        await client.forward(_tenant(merchant), card=card, connector="echo", request={**WITHOUT_CVC, "path": path})
    assert refused.value.param == "request[path]"
    assert len(processor[0].received) == sent_before


@pytest.mark.parametrize("path", ["/slow", "/drip"])
async def test_a_processor_slower_than_the_timeout(
    platform: Platform, vault: ApiProcess, merchant: Credentials, client: VaultClient, path: str
) -> None:
    card = await vault_card(platform, vault, merchant)
    started = time.monotonic()
    with pytest.raises(ProcessorUnavailable) as failed:
        await client.forward(_tenant(merchant), card=card, connector="echo", request={**WITHOUT_CVC, "path": path})
    assert failed.value.code == "processor_timeout"
    assert time.monotonic() - started < ANSWERED_WITHIN_S


async def test_a_card_of_another_merchant_is_not_found(
    platform: Platform, vault: ApiProcess, merchant: Credentials, client: VaultClient
) -> None:
    other = await platform.merchant()
    card = await vault_card(platform, vault, other)
    with pytest.raises(ResourceMissing) as missing:
        await client.forward(_tenant(merchant), card=card, connector="echo", request=CHARGE)
    assert missing.value.param == "card"
    # The failed attempt used nothing: the CVC is still there for its own merchant.
    assert (await client.forward(_tenant(other), card=card, connector="echo", request=CHARGE))["status"] == 200


async def test_a_cvc_past_its_hour_is_unavailable(
    platform: Platform, vault: ApiProcess, merchant: Credentials, client: VaultClient
) -> None:
    card = await vault_card(platform, vault, merchant)
    async with platform.owner.transaction() as connection:
        await connection.execute(_AGE_CVC, card)
    with pytest.raises(InvalidRequest) as unavailable:
        await client.forward(_tenant(merchant), card=card, connector="echo", request=CHARGE)
    assert unavailable.value.code == "cvc_unavailable"


async def test_the_sweep_deletes_expired_cvcs_and_abandoned_cards(
    platform: Platform, vault: ApiProcess, merchant: Credentials, settings: Settings
) -> None:
    exchanged_old_cvc = await vault_card(platform, vault, merchant)
    exchanged_old_token = await vault_card(platform, vault, merchant)
    abandoned_token = await token_id(vault, merchant)
    fresh_token = await token_id(vault, merchant)
    async with platform.owner.transaction() as connection:
        abandoned, fresh = [
            await connection.fetchval("SELECT card_id FROM vault.tokens WHERE id = $1", token)
            for token in (abandoned_token, fresh_token)
        ]
        await connection.execute(_AGE_CVC, exchanged_old_cvc)
        await connection.execute(_EXPIRE_TOKEN, abandoned_token)
        await connection.execute(_EXPIRE_TOKEN_OF_CARD, exchanged_old_token)

    async with vault_in_process(settings) as in_process:
        await service.sweep(in_process)

    async with platform.owner.transaction() as connection:
        rows = {
            card: tuple(await connection.fetchrow(_ROWS_OF, card))
            for card in (exchanged_old_cvc, exchanged_old_token, abandoned, fresh)
        }
    assert rows == {
        exchanged_old_cvc: (1, 0, 1),  # the card stays with its payment method; its CVC is gone
        exchanged_old_token: (1, 1, 1),  # a used token's expiry changes nothing
        abandoned: (0, 0, 0),  # never exchanged: the card goes with its token
        fresh: (1, 1, 1),
    }


# More than two batches of each kind of expired row: one sweep must clear them all.
BACKLOG = 2 * repository.SWEEP_BATCH_MAX + 1
# Rows the sweep never decrypts, so their sealed columns can be filler.
_BACKLOG_CARDS = """
INSERT INTO vault.cards (id, merchant_id, livemode, algorithm, key_version, wrapped_key, nonce, ciphertext,
                         fingerprint, brand, last4, exp_month, exp_year, funding, payment_method_id, created_at)
SELECT 'crd_' || $2 || n, 'mer_backlog', false, 1, 1, '\\x00', '\\x00', '\\x00', 'f', 'visa', '4242', 12, 2030, 'credit',
       CASE WHEN $2 = 'exchanged' THEN 'pm_' || n END, now()
FROM generate_series(1, $1) AS n
"""
_BACKLOG_CVCS = """
INSERT INTO vault.cvcs (card_id, merchant_id, livemode, algorithm, key_version, wrapped_key, nonce, ciphertext, expires_at)
SELECT id, merchant_id, false, 1, 1, '\\x00', '\\x00', '\\x00',
       CASE WHEN payment_method_id IS NULL THEN now() + interval '1 hour' ELSE now() - interval '1 second' END
FROM vault.cards
"""
_BACKLOG_TOKENS = """
INSERT INTO vault.tokens (id, merchant_id, livemode, card_id, signals, created_at, expires_at, used_at)
SELECT 'tok_' || id, merchant_id, false, id, '{}', now() - interval '1 hour', now() - interval '1 second',
       CASE WHEN payment_method_id IS NULL THEN NULL ELSE now() END
FROM vault.cards
"""
_LEFT = """
SELECT (SELECT count(*) FROM vault.cvcs WHERE expires_at <= now()) AS expired_cvcs,
       (SELECT count(*) FROM vault.cards WHERE payment_method_id IS NULL) AS abandoned_cards,
       (SELECT count(*) FROM vault.cards WHERE payment_method_id IS NOT NULL) AS exchanged_cards
"""


async def test_one_sweep_clears_a_backlog_larger_than_a_batch(private_database: TestDatabase) -> None:
    owner = bootstrap.owner_database(private_database.owner_url)
    try:
        async with owner.transaction() as connection:
            for kind in ("exchanged", "abandoned"):
                await connection.execute(_BACKLOG_CARDS, BACKLOG, kind)
            await connection.execute(_BACKLOG_CVCS)
            await connection.execute(_BACKLOG_TOKENS)
        async with vault_in_process(settings_for(private_database)) as in_process:
            assert await service.sweep(in_process) == 2 * BACKLOG
        async with owner.transaction() as connection:
            left = await connection.fetchrow(_LEFT)
    finally:
        await owner.dispose()
    assert tuple(left) == (0, 0, BACKLOG)


@pytest.mark.processes
async def test_the_vault_stops_while_the_api_keeps_a_connection_open(test_database: TestDatabase) -> None:
    """The API's pool keeps idle TLS connections to the vault and never answers a close on
    them: SIGTERM stops the vault all the same, once a request in flight could have ended."""
    ports = (free_port(), free_port())
    paths = CertPaths.under(test_database.data_dir)
    async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{ports[1]}", verify=client_ssl_context(paths)) as api:
        with running_vault(test_database, {"BASTION_VAULT_FORWARD_TIMEOUT_MS": str(FORWARD_TIMEOUT_MS)}, ports=ports):
            assert (await api.get("/healthz")).status_code == 200
            stopping = time.monotonic()
        # Leaving the block sent SIGTERM and waited (SIGKILL after PROCESS_STOP_TIMEOUT_S).
        assert time.monotonic() - stopping < STOPPED_WITHIN_S


@pytest.mark.parametrize(
    ("connector_cas", "message"),
    [
        ("plain=/etc/hostname", "not an https connector"),
        ("nowhere=/etc/hostname", "not an https connector"),
        ("secure=/no/such/ca.pem", "does not exist"),
        ("secure", "expected name=/path/to/ca.pem"),
    ],
)
def test_a_pin_names_an_https_connector_and_an_existing_file(
    monkeypatch: pytest.MonkeyPatch, connector_cas: str, message: str
) -> None:
    monkeypatch.setenv("BASTION_VAULT_CONNECTORS", "plain=http://127.0.0.1:9,secure=https://127.0.0.1:9")
    monkeypatch.setenv("BASTION_VAULT_CONNECTOR_CAS", connector_cas)
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env()
