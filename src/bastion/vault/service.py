"""Use cases of the vault: tokenize a card from the browser, exchange a token for the API,
forward card data to a processor, sweep what has expired.

Card data exists in clear only inside these functions, between the request that brought it
and the envelope that seals it (or the processor request that carries it).
"""

import asyncio
import contextlib
import hmac
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from bastion.kernel.clock import unix_seconds
from bastion.kernel.devices import device_id
from bastion.kernel.errors import (
    AuthenticationFailed,
    ConfigurationError,
    InvalidRequest,
    ProcessorUnavailable,
    ProcessorUnreachable,
    ResourceMissing,
)
from bastion.kernel.ids import is_id, new_id
from bastion.platform.cache import UNKNOWN_KEY_TTL_S, TtlCache
from bastion.platform.crypto import KeyedHasher
from bastion.platform.db import Actor, Database, Tenant
from bastion.platform.logging import get_logger
from bastion.platform.redaction import redact_text, redact_value
from bastion.platform.settings import Settings
from bastion.vault import repository
from bastion.vault.card_testing import THROTTLE_S, WINDOW_S, CardTestingGuard, Limits, Subject, SubjectKind, Tripped
from bastion.vault.cvc_keys import CVC_TTL, CvcKeys
from bastion.vault.domain import CardDetails, check_cvc, check_expiry, check_name, check_test_card, clean_number
from bastion.vault.envelope import Sealed, binding, fingerprint, open_sealed, seal
from bastion.vault.errors import (
    ConnectorNotTls,
    CvcUnavailable,
    LiveModeRequiresHsm,
    ProcessorResponseTooLarge,
    ProcessorTimeout,
    TokenExpired,
)
from bastion.vault.forwarding import check_template, fill, placeholders, pointed
from bastion.vault.keyring import KeyEncryptionKeys
from bastion.vault.resources import CardTestingSignal, Token, TokenCard
from bastion.vault.schemas import DeviceSignals, Exchange, Forward, TokenCreate, signals_document

TOKEN_TTL = timedelta(minutes=15)
# The vault writes no audit rows: its units of work name the vault as their actor.
VAULT_ACTOR = Actor(id="vault")
_log = get_logger(__name__)
# A forward is never retried (the processor may have acted on it), so an idle connection is
# dropped long before common server keep-alives (5 s for uvicorn and Node.js) could close it
# under a request going out.
PROCESSOR_KEEP_ALIVE_S = 2.0
# Open connections to processors, all connectors together; a forward beyond waits for one
# within its deadline.
PROCESSOR_CONNECTIONS_MAX = 100
_PUBLISHABLE_KEYS_MAX = 10_000
# How long a vault process trusts the active key version it read. A write under a version
# that a rotation has replaced meanwhile is refused and retried under the new one at once.
ACTIVE_VERSION_TTL_S = 5.0
# A new active key version can appear between reading it and writing under it (a rotation
# began meanwhile): the write is refused and tried once more.
_WRITE_ATTEMPTS = 2
FORWARD_RESPONSE_BYTES_MAX = 1_048_576
# A round of the janitor deletes up to this many batches: a backlog of expired CVCs (a burst
# of tokenizations an hour ago) goes in the next round, not a batch a minute (PCI DSS 3.3.1).
SWEEP_BATCHES_MAX = 100


@dataclass(frozen=True, slots=True)
class PublishableKey:
    key_id: str
    merchant_id: str
    livemode: bool
    allowed_origins: tuple[str, ...]

    @property
    def tenant(self) -> Tenant:
        return Tenant(merchant_id=self.merchant_id, livemode=self.livemode)


@dataclass(frozen=True, slots=True)
class Client:
    """Who is tokenizing: the browser's address, its device as the card fields describe it, and
    the request, for the card-testing record."""

    ip_address: str | None
    device: str | None
    request_id: str | None

    def subjects(self, key: PublishableKey) -> list[Subject]:
        subjects = [Subject(SubjectKind.PUBLISHABLE_KEY, key.key_id)]
        if self.ip_address is not None:
            subjects.append(Subject(SubjectKind.CLIENT_IP, self.ip_address))
        if self.device is not None:
            subjects.append(Subject(SubjectKind.DEVICE, self.device))
        return subjects


def device_of(signals: DeviceSignals) -> str | None:
    """The device's id (`kernel.devices`); a client that sends no signals is counted by its IP
    address and key only."""
    return device_id(signals.model_dump(mode="json"))


@dataclass
class Processors:
    """The HTTP clients to processors: one for the connectors that trust the system's CAs, and
    one per connector pinned to a CA of its own."""

    shared: httpx.AsyncClient
    pinned: dict[str, httpx.AsyncClient]

    def of(self, connector: str) -> httpx.AsyncClient:
        return self.pinned.get(connector, self.shared)

    async def aclose(self) -> None:
        for client in (self.shared, *self.pinned.values()):
            await client.aclose()


@dataclass
class Vault:
    """The vault's runtime: its own database role, its keyring, its processor client."""

    settings: Settings
    database: Database
    keys: KeyEncryptionKeys
    hasher: KeyedHasher
    processors: Processors
    card_testing: CardTestingGuard = field(init=False)
    cvc_keys: CvcKeys = field(init=False)

    def __post_init__(self) -> None:
        self._publishable: TtlCache[str, PublishableKey] = TtlCache(self.settings.auth_cache_ttl_s, _PUBLISHABLE_KEYS_MAX)
        self._unknown_publishable: TtlCache[str, bool] = TtlCache(UNKNOWN_KEY_TTL_S, _PUBLISHABLE_KEYS_MAX)
        self._active_version: tuple[int | None, float] = (None, 0.0)
        limits = Limits(self.settings.vault_card_testing_per_client, self.settings.vault_card_testing_per_key)
        self.card_testing = CardTestingGuard(limits)
        self.cvc_keys = CvcKeys(self.keys)

    async def publishable_key(self, key: str) -> PublishableKey:
        """The merchant behind a publishable key (`pk_test_...`): what the browser may present."""
        if not key.startswith(("pk_test_", "pk_live_")):
            raise AuthenticationFailed("Invalid publishable key: expected pk_test_... or pk_live_...")
        digest = self.hasher.digest(key)
        if (cached := self._publishable.get(digest)) is not None:
            return cached
        if self._unknown_publishable.get(digest):
            raise AuthenticationFailed("Invalid publishable key provided")
        async with self.database.transaction() as connection:
            row = await repository.publishable_key(connection, digest)
        if row is None or row["revoked"] or not hmac.compare_digest(row["publishable_hash"], digest):
            self._unknown_publishable.put(digest, True)
            raise AuthenticationFailed("Invalid publishable key provided")
        found = PublishableKey(
            key_id=row["key_id"],
            merchant_id=row["merchant_id"],
            livemode=row["livemode"],
            allowed_origins=tuple(row["allowed_origins"]),
        )
        self._publishable.put(digest, found)
        return found

    async def active_version(self, *, refresh: bool = False) -> int:
        """The key version new data keys are wrapped under, read again every few seconds so
        that a rotation's new version is taken up without a restart."""
        version, read_at = self._active_version
        if refresh or version is None or time.monotonic() - read_at > ACTIVE_VERSION_TTL_S:
            async with self.database.transaction() as connection:
                version = await repository.active_key_version(connection)
            if version is None:
                raise ConfigurationError("the vault has no active key version: run `bastion migrate`")
            self._active_version = (version, time.monotonic())
        return version

    async def close(self) -> None:
        await self.processors.aclose()
        await self.database.dispose()
        self.keys.close()

    def check_keyring_for(self, livemode: bool) -> None:
        if livemode and self.keys.provider == "local" and not self.settings.vault_local_keyring_in_live:
            raise LiveModeRequiresHsm(
                "Live-mode cards need an HSM keyring (BASTION_VAULT_KEYRING=pkcs11); the local keyring "
                "is for development and test mode.",
            )


def card_details(request: TokenCreate, today: date) -> CardDetails:
    """The card as typed, checked field by field; a 400 names the first bad one."""
    card = request.card
    number = clean_number(card.number, "card[number]")
    check_expiry(card.exp_month, card.exp_year, today, month_param="card[exp_month]", year_param="card[exp_year]")
    details = CardDetails(number=number, exp_month=card.exp_month, exp_year=card.exp_year, cvc=card.cvc, name=card.name)
    if card.cvc is not None:
        check_cvc(card.cvc, details.brand, "card[cvc]")
    if card.name is not None:
        check_name(card.name, "card[name]")
    return details


def token_resource(token_id: str, card: CardDetails, created_at: datetime, livemode: bool) -> Token:
    return Token(
        id=token_id,
        object="token",
        card=TokenCard(
            brand=card.brand.value,
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            funding=card.funding,
        ),
        created=unix_seconds(created_at),
        expires_at=unix_seconds(created_at + TOKEN_TTL),
        livemode=livemode,
    )


def _card_plaintext(card: CardDetails) -> bytes:
    return orjson.dumps({"number": card.number, "name": card.name})


async def tokenize(vault: Vault, key: PublishableKey, request: TokenCreate, client: Client) -> Token:
    """Seal the card and issue its token, unless the client is throttled for card testing (429
    before any check) or the card is refused (counted towards card testing)."""
    subjects = client.subjects(key)
    vault.card_testing.check(subjects)
    moment = vault.database.clock.now()
    try:
        card = card_details(request, moment.date())
        if not key.livemode:
            check_test_card(card.number, "card[number]")
    except InvalidRequest:
        await _record(vault, key, client, vault.card_testing.observe(subjects, None))
        raise
    vault.check_keyring_for(key.livemode)
    token = await _seal_and_store(vault, key.tenant, request, card, moment, client_ip=client.ip_address)
    await _record(vault, key, client, vault.card_testing.observe(subjects, card.number))
    return token


async def _record(vault: Vault, key: PublishableKey, client: Client, tripped: list[Tripped]) -> None:
    """An audit row and an event for each subject that just passed its card-testing limit."""
    for each in tripped:
        moment = vault.database.clock.now()
        signal = CardTestingSignal(
            id=new_id("cts"),
            object="card_testing_signal",
            subject=each.subject.kind.value,
            client_ip=client.ip_address,
            device=client.device,
            publishable_key=key.key_id,
            failures=each.failures,
            distinct_cards=each.distinct_cards,
            window_s=int(WINDOW_S),
            throttled_until=unix_seconds(moment) + int(THROTTLE_S),
            created=unix_seconds(moment),
            livemode=key.livemode,
        )
        record = repository.CardTestingRecord(
            audit_id=uuid.uuid4(),
            event_id=new_id("evt"),
            signal=signal,
            request_id=client.request_id,
            created_at=moment,
        )
        async with vault.database.transaction() as connection:
            await repository.record_card_testing(connection, key.tenant, record)


async def _seal_and_store(
    vault: Vault, tenant: Tenant, request: TokenCreate, card: CardDetails, moment: datetime, *, client_ip: str | None
) -> Token:
    card_id, token_id = new_id("crd"), new_id("tok")
    card_fingerprint = fingerprint(vault.keys, tenant, card.number)
    # The CVC's hourly layer does not depend on the key version: made once, whatever the attempts.
    cvc_aad = binding(card_id, tenant.merchant_id, "cvc")
    cvc_layer = await vault.cvc_keys.seal(vault.database, card.cvc, cvc_aad, moment) if card.cvc else None
    refresh = False
    for _ in range(_WRITE_ATTEMPTS):
        version = await vault.active_version(refresh=refresh)
        sealed_card = seal(vault.keys, version, _card_plaintext(card), binding(card_id, tenant.merchant_id, "card"))
        sealed_cvc = seal(vault.keys, version, cvc_layer, cvc_aad) if cvc_layer is not None else None
        new_card = repository.NewCard(
            card_id=card_id,
            token_id=token_id,
            sealed_card=sealed_card,
            sealed_cvc=sealed_cvc,
            fingerprint=card_fingerprint,
            brand=card.brand.value,
            last4=card.last4,
            bin=card.bin,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            funding=card.funding,
            # What the fields sent, and the address the vault saw them from (the risk engine's :ip_address:).
            signals=signals_document(request.signals) | {"client": {"ip_address": client_ip}},
            created_at=moment,
            token_expires_at=moment + TOKEN_TTL,
            cvc_expires_at=moment + CVC_TTL,
        )
        async with vault.database.transaction() as connection:
            await repository.begin_write(connection, tenant)
            if await repository.insert_card_and_token(connection, tenant, new_card):
                return token_resource(token_id, card, moment, tenant.livemode)
        refresh = True
    raise ConfigurationError("the vault's key version changed twice during one tokenization")


def card_metadata(row: Any) -> dict[str, Any]:
    """What the API may know of a card: never the number, only brand, BIN and last 4 (as PCI DSS
    lets them be shown), expiry, funding, fingerprint."""
    return {
        "vault_card_id": row["id"],
        "brand": row["brand"],
        "bin": row["bin"],
        "last4": row["last4"],
        "exp_month": row["exp_month"],
        "exp_year": row["exp_year"],
        "funding": row["funding"],
        "fingerprint": row["fingerprint"],
    }


async def exchange(vault: Vault, request: Exchange, token_id: str) -> dict[str, Any]:
    """Use a single-use token once, binding its card to `payment_method_id`. A token used
    before answers with the card and the payment method it is bound to: the API refuses the
    second use, unless that payment method never committed on its side (then it takes that
    id, and no card stays bound to a payment method that does not exist)."""
    tenant = Tenant(merchant_id=request.merchant_id, livemode=request.livemode)
    if not is_id(token_id, "tok"):
        raise ResourceMissing(f"No such token: '{token_id}'", param="token")
    async with vault.database.unit_of_work(tenant, VAULT_ACTOR) as uow:
        row = await repository.use_token(uow.connection, tenant, token_id, request.payment_method_id, uow.now())
        if row is None:
            row = await repository.get_token(uow.connection, tenant, token_id)
    if row is None:
        raise ResourceMissing(f"No such token: '{token_id}'", param="token")
    if row["payment_method_id"] is None:
        raise TokenExpired("This token has expired; tokenize the card again.", param="token")
    return {**card_metadata(row), "payment_method_id": row["payment_method_id"], "signals": row["signals"]}


def _connector_url(vault: Vault, tenant: Tenant, connector: str, path: str) -> str:
    base = vault.settings.vault_connectors.get(connector)
    if base is None:
        raise InvalidRequest(f"Unknown connector '{connector}': it is not on the vault's allowlist.", param="connector")
    if tenant.livemode and not base.startswith("https://"):
        # PCI DSS 4.2.1: a live card crosses the network only under TLS.
        raise ConnectorNotTls(f"Live-mode cards go only to https connectors; '{connector}' is not.", param="connector")
    url = base + path
    # The path cannot leave the connector's host: the allowlist is by host, not by prefix.
    if urlsplit(url).netloc != urlsplit(base).netloc:
        raise InvalidRequest("The request path must stay on the connector's host.", param="request[path]")
    return url


async def forward(vault: Vault, request: Forward) -> dict[str, Any]:
    """Decrypt the card, fill the template's body, send it to the connector's allowlisted
    endpoint, and return the fields the caller asked for from the answer (or, without any, the
    answer with card numbers masked)."""
    tenant = Tenant(merchant_id=request.merchant_id, livemode=request.livemode)
    url = _connector_url(vault, tenant, request.connector, request.request.path)
    template = request.request
    check_template(template.path, template.headers)
    wanted = placeholders(template.body)
    if not is_id(request.card, "crd"):
        raise ResourceMissing(f"No such card: '{request.card}'", param="card")
    # Read the card and take its CVC, and commit before calling out: no transaction stays
    # open across a processor call. The first forward takes the CVC whether it uses it or not
    # (PCI DSS 3.3.1: kept only until authorization), and a failed call has used it all the same.
    async with vault.database.unit_of_work(tenant, VAULT_ACTOR) as uow:
        row = await repository.get_card(uow.connection, tenant, request.card)
        if row is None:
            raise ResourceMissing(f"No such card: '{request.card}'", param="card")
        sealed_cvc = await repository.take_cvc(uow.connection, tenant, request.card, uow.now())
    if "cvc" in wanted and sealed_cvc is None:
        raise CvcUnavailable(
            "The card's security code is no longer held (taken by an earlier forward, or older than one hour).",
            param="request[body]",
        )
    card = orjson.loads(open_sealed(vault.keys, repository.sealed_from(row), binding(row["id"], tenant.merchant_id, "card")))
    fields = {
        "number": card["number"],
        "name": card["name"] or "",
        "exp_month": f"{row['exp_month']:02d}",
        "exp_year": str(row["exp_year"]),
        "cvc": _open_cvc(vault, sealed_cvc, row["id"], tenant.merchant_id) if "cvc" in wanted else "",
    }
    outgoing = httpx.Request(template.method, url, headers=template.headers, content=fill(template.body, fields).encode())
    status, headers, body = await _send(vault, request.connector, outgoing)
    answer: dict[str, Any] = {"status": status, "headers": headers, "body": None, "fields": None}
    if request.answer is None:
        # Card numbers, security codes and secrets a processor may echo are masked like in logs.
        answer["body"] = redact_text(body.decode(errors="replace"))
    else:
        answer["fields"] = _answer_fields(body, request.answer.fields)
    return answer


def _answer_fields(body: bytes, pointers: dict[str, str]) -> dict[str, Any]:
    """The asked-for values of a JSON answer, masked like logs; None where there is none (or
    the answer is not JSON)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    return {name: redact_value(pointed(document, pointer)) for name, pointer in pointers.items()}


def _open_cvc(vault: Vault, sealed: Sealed | None, card_id: str, merchant_id: str) -> str:
    if sealed is None:
        return ""
    aad = binding(card_id, merchant_id, "cvc")
    cvc = vault.cvc_keys.open(open_sealed(vault.keys, sealed, aad), aad, vault.database.clock.now())
    if cvc is None:
        # Only a row the sweep has not deleted yet, or one restored from a backup: its key went after it expired.
        raise CvcUnavailable("The card's security code is no longer held (its key is destroyed).", param="request[body]")
    return cvc


async def _send(vault: Vault, connector: str, outgoing: httpx.Request) -> tuple[int, dict[str, str], bytes]:
    """The processor's status, the headers passed on (masked) and its raw body."""
    try:
        # One deadline for the whole call: httpx's timeouts are per connect, read or write,
        # so a processor that trickles its answer would otherwise hold the request forever.
        async with (
            asyncio.timeout(vault.settings.vault_forward_timeout_s),
            contextlib.aclosing(await vault.processors.of(connector).send(outgoing, stream=True)) as answer,
        ):
            chunks: list[bytes] = []
            size = 0
            async for chunk in answer.aiter_bytes():
                size += len(chunk)
                if size > FORWARD_RESPONSE_BYTES_MAX:
                    raise ProcessorResponseTooLarge(f"The processor's answer exceeds {FORWARD_RESPONSE_BYTES_MAX} bytes.")
                chunks.append(chunk)
    except (httpx.ConnectError, httpx.ConnectTimeout):
        # Checked before the other timeouts: no connection, so no byte of the request left.
        raise ProcessorUnreachable("The processor could not be reached; nothing was sent.") from None
    except (TimeoutError, httpx.TimeoutException):
        raise ProcessorTimeout("The processor did not answer in time.") from None
    except httpx.HTTPError as error:
        raise ProcessorUnavailable(f"The processor could not be reached ({type(error).__name__}).") from None
    returned = {name: redact_text(value) for name, value in answer.headers.items() if name.lower() in _RETURNED_HEADERS}
    return answer.status_code, returned, b"".join(chunks)


_RETURNED_HEADERS = frozenset({"content-type", "request-id", "x-request-id", "idempotency-key", "retry-after"})


async def sweep(vault: Vault) -> int:
    """Destroy the CVC keys that are due (and make the next ones), then delete expired CVCs and
    the cards of tokens that expired unexchanged, a batch per transaction until a batch comes
    back short (or SWEEP_BATCHES_MAX); rows deleted."""
    destroyed = await vault.cvc_keys.keep(vault.database, vault.database.clock.now())
    if destroyed:
        _log.info("vault_cvc_keys_destroyed", epochs=destroyed)
    deleted = 0
    for _ in range(SWEEP_BATCHES_MAX):
        async with vault.database.transaction() as connection:
            await repository.begin_sweep(connection)
            batch = await repository.delete_expired(connection, vault.database.clock.now())
        deleted += batch
        # Each kind is limited to a batch on its own: below one in all, neither was cut short.
        if batch < repository.SWEEP_BATCH_MAX:
            break
    return deleted
