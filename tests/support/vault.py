"""The vault as the tests drive it: a card to type, tokenization on the vault's origin,
exchange through the API, an in-process vault on a database of the test's own, and
every sealed value opened with the keyring."""

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from bastion import bootstrap
from bastion.kernel.clock import SYSTEM_CLOCK, Clock
from bastion.platform.db import Connection
from bastion.platform.settings import Settings
from bastion.vault import repository, service
from bastion.vault.cvc_keys import open_cvc
from bastion.vault.envelope import binding, open_sealed
from bastion.vault.keyring import KeyEncryptionKeys
from bastion.vault.schemas import TokenCreate
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase

VISA = "4242424242424242"
# The sandbox issuer asks for 3-D Secure on this card (docs/payments.md, test cards).
CHALLENGED = "4000002760003184"
# The sandbox acquirer's cardholder disputes this card once captured.
DISPUTED = "4000000000000259"
NEXT_YEAR = datetime.now(UTC).year + 1


def card(**changes: Any) -> dict[str, Any]:
    return {
        "number": "4242 4242 4242 4242",
        "exp_month": 12,
        "exp_year": NEXT_YEAR,
        "cvc": "123",
        "name": "Ada Lovelace",
    } | changes


async def tokenize(
    vault: ApiProcess,
    credentials: Credentials,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=vault.url, timeout=10) as client:
        return await client.post(
            "/v1/tokens",
            json=body if body is not None else {"card": card()},
            headers={"Authorization": f"Bearer {credentials.publishable}", **(headers or {})},
            **kwargs,
        )


async def token_id(vault: ApiProcess, credentials: Credentials, **changes: Any) -> str:
    response = await tokenize(vault, credentials, {"card": card(**changes)})
    assert response.status_code == 200, response.text
    created: str = response.json()["id"]
    return created


async def exchange(platform: Platform, credentials: Credentials, token: str, **extra: Any) -> httpx.Response:
    async with platform.client(credentials) as client:
        return await client.post("/v1/payment_methods", json={"type": "card", "card": {"token": token}, **extra})


async def payment_method(platform: Platform, vault: ApiProcess, credentials: Credentials, number: str = VISA) -> str:
    """A payment method of `credentials`' merchant: the card tokenized on the vault's origin, then exchanged."""
    response = await exchange(platform, credentials, await token_id(vault, credentials, number=number))
    assert response.status_code == 200, response.text
    created: str = response.json()["id"]
    return created


async def vault_card(platform: Platform, vault: ApiProcess, credentials: Credentials, **card: Any) -> str:
    """A card tokenized and exchanged for a payment method: the vault card behind it (what a
    connector's authorization names)."""
    created = await exchange(platform, credentials, await token_id(vault, credentials, **card))
    assert created.status_code == 200, created.text
    async with platform.owner.transaction() as connection:
        vault_card_id: str = await connection.fetchval(
            "SELECT vault_card_id FROM payment_methods WHERE id = $1", created.json()["id"]
        )
    return vault_card_id


async def paid_intent(
    platform: Platform, vault: ApiProcess, credentials: Credentials, *, amount: int, number: str = VISA
) -> dict[str, Any]:
    """A PaymentIntent of `amount` EUR confirmed with a new payment method of `number` (captured at once)."""
    method = await payment_method(platform, vault, credentials, number=number)
    async with platform.client(credentials) as client:
        answer = await client.post(
            "/v1/payment_intents", json={"amount": amount, "currency": "EUR", "payment_method": method, "confirm": True}
        )
    assert answer.status_code == 200, answer.text
    intent: dict[str, Any] = answer.json()
    return intent


def settings_for(database: TestDatabase, **changes: Any) -> Settings:
    """This process's settings, pointed at `database` (a private one, not the session's)."""
    return dataclasses.replace(
        Settings.from_env(),
        data_dir=database.data_dir,
        database_url=database.owner_url,
        db_role_prefix=database.role_prefix,
        **changes,
    )


@asynccontextmanager
async def vault_in_process(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> AsyncIterator[service.Vault]:
    """The vault's runtime as `bastion vault` builds it (its role, its keyring), without the
    listeners; its time is `clock`'s."""
    assert settings.database_url is not None
    vault = bootstrap.vault_runtime(settings, bootstrap.vault_grant(settings, settings.database_url), clock=clock)
    try:
        yield vault
    finally:
        await vault.close()


async def tokenize_in_process(vault: service.Vault, publishable: str, **changes: Any) -> str:
    """The use case behind POST /v1/tokens; the token's id."""
    key = await vault.publishable_key(publishable)
    request = TokenCreate.model_validate({"card": card(**changes)})
    created = await service.tokenize(vault, key, request, service.Client(ip_address=None, device=None, request_id=None))
    token: str = created["id"]
    return token


@dataclasses.dataclass(frozen=True)
class Opened:
    number: str
    cvc: str | None
    key_version: int
    cvc_key_version: int | None


_SEALED_CARDS = """
SELECT c.id, c.merchant_id, c.algorithm, c.key_version, c.wrapped_key, c.nonce, c.ciphertext, t.id AS token_id
FROM vault.cards c JOIN vault.tokens t ON t.card_id = c.id
"""
_SEALED_CVCS = "SELECT card_id, merchant_id, algorithm, key_version, wrapped_key, nonce, ciphertext FROM vault.cvcs"


async def open_every_card(owner: Connection, keys: KeyEncryptionKeys) -> dict[str, Opened]:
    """Every card and CVC in the vault opened with `keys`, by token id; `DecryptionFailed` at
    the first one that does not open (a CVC whose epoch key is destroyed is None). Read as the
    owner: row-level security does not apply."""
    cvcs = {row["card_id"]: row for row in await owner.fetch(_SEALED_CVCS)}
    opened: dict[str, Opened] = {}
    for row in await owner.fetch(_SEALED_CARDS):
        content = orjson.loads(open_sealed(keys, repository.sealed_from(row), binding(row["id"], row["merchant_id"], "card")))
        cvc_row = cvcs.get(row["id"])
        cvc = None
        if cvc_row is not None:
            cvc_aad = binding(row["id"], row["merchant_id"], "cvc")
            cvc = open_cvc(keys, open_sealed(keys, repository.sealed_from(cvc_row), cvc_aad), cvc_aad)
        opened[row["token_id"]] = Opened(
            number=content["number"],
            cvc=cvc,
            key_version=row["key_version"],
            cvc_key_version=cvc_row["key_version"] if cvc_row is not None else None,
        )
    return opened
