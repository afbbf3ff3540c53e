"""Use cases of merchants and API keys."""

import hmac
from dataclasses import dataclass
from typing import Any

from bastion import audit
from bastion.kernel.clock import unix_seconds
from bastion.kernel.errors import AuthenticationFailed, InvalidRequest, ResourceMissing
from bastion.kernel.ids import is_id, new_id
from bastion.merchants import repository
from bastion.merchants.domain import (
    ORIGINS_MAX,
    SCOPES,
    Principal,
    generate_secret,
    normalized_origin,
    secret_hint,
    unknown_scopes,
)
from bastion.merchants.errors import OriginsLimitReached, ScopeUnknown
from bastion.platform.crypto import KeyedHasher
from bastion.platform.db import Connection, UnitOfWork

NAME_LENGTH_MAX = 256


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """An API key as shown once, at creation: the only time its secrets exist in clear."""

    id: str
    merchant_id: str
    livemode: bool
    scopes: list[str]
    secret: str
    publishable: str


async def create_merchant(uow: UnitOfWork, name: str) -> dict[str, Any]:
    name = name.strip()
    if not 1 <= len(name) <= NAME_LENGTH_MAX:
        raise InvalidRequest(f"name must be 1 to {NAME_LENGTH_MAX} characters", param="name")
    row = await repository.insert_merchant(uow.connection, uow.tenant.merchant_id, name)
    resource = {"id": row["id"], "object": "merchant", "name": row["name"], "created": unix_seconds(row["created_at"])}
    audit.record(uow, action_type="merchant.create", resource_type="merchant", resource_id=row["id"], before=None, after=resource)
    return resource


async def create_api_key(uow: UnitOfWork, hasher: KeyedHasher, scopes: list[str] | None) -> IssuedKey:
    merchant_id = uow.tenant.merchant_id
    if not is_id(merchant_id, "mer") or not await repository.merchant_exists(uow.connection, merchant_id):
        raise ResourceMissing(f"No such merchant: '{merchant_id}'", param="merchant")
    chosen = sorted(SCOPES) if not scopes else sorted(set(scopes))
    if unknown := unknown_scopes(chosen):
        raise ScopeUnknown(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(sorted(SCOPES))}", param="scope")
    secret = generate_secret("sk", uow.tenant.livemode)
    publishable = generate_secret("pk", uow.tenant.livemode)
    row = await repository.insert_api_key(
        uow.connection,
        key_id=new_id("key"),
        merchant_id=merchant_id,
        livemode=uow.tenant.livemode,
        scopes=chosen,
        secret_hash=hasher.digest(secret),
        publishable_hash=hasher.digest(publishable),
        secret_hint=secret_hint(secret),
    )
    key_id, livemode = row["id"], row["livemode"]
    after = {"id": key_id, "object": "api_key", "livemode": livemode, "scopes": chosen, "secret_hint": row["secret_hint"]}
    audit.record(uow, action_type="api_key.create", resource_type="api_key", resource_id=key_id, before=None, after=after)
    return IssuedKey(id=key_id, merchant_id=merchant_id, livemode=livemode, scopes=chosen, secret=secret, publishable=publishable)


def secret_digest(hasher: KeyedHasher, secret: str) -> str:
    """The keyed hash an API secret is stored and found under; refuses what is not a secret key."""
    if not secret.startswith(("sk_test_", "sk_live_")):
        raise AuthenticationFailed("Invalid API key: use a secret key (sk_test_... or sk_live_...) as a Bearer token")
    return hasher.digest(secret)


async def authenticate(connection: Connection, digest: str) -> Principal:
    """The key whose secret has `digest` (from `secret_digest`)."""
    row = await repository.api_key_by_hash(connection, digest)
    if row is None or not hmac.compare_digest(digest, row["secret_hash"]) or row["revoked"]:
        raise AuthenticationFailed("Invalid API key provided")
    return Principal(key_id=row["id"], merchant_id=row["merchant_id"], livemode=row["livemode"], scopes=frozenset(row["scopes"]))


async def _origins(uow: UnitOfWork) -> list[str]:
    origins = await repository.allowed_origins(uow.connection, uow.tenant.merchant_id, uow.tenant.livemode)
    if origins is None:
        raise ResourceMissing(f"No such merchant: '{uow.tenant.merchant_id}'", param="merchant")
    return origins


async def _change_origins(uow: UnitOfWork, before: list[str], after: list[str]) -> list[str]:
    if after != before:
        await repository.set_allowed_origins(uow.connection, uow.tenant.merchant_id, uow.tenant.livemode, after)
        audit.record(
            uow,
            action_type="merchant.allowed_origins.update",
            resource_type="merchant",
            resource_id=uow.tenant.merchant_id,
            before={"allowed_origins": before},
            after={"allowed_origins": after},
        )
    return after


async def allowed_origins(uow: UnitOfWork) -> list[str]:
    """The browser origins that may frame the merchant's card fields in the unit of work's mode."""
    return await _origins(uow)


async def add_allowed_origin(uow: UnitOfWork, origin: str) -> list[str]:
    before = await _origins(uow)
    normalized = normalized_origin(origin, livemode=uow.tenant.livemode)
    if normalized not in before and len(before) >= ORIGINS_MAX:
        raise OriginsLimitReached(f"A merchant can register at most {ORIGINS_MAX} origins", param="origin")
    return await _change_origins(uow, before, sorted({*before, normalized}))


async def remove_allowed_origin(uow: UnitOfWork, origin: str) -> list[str]:
    before = await _origins(uow)
    # Any origin may be removed, whatever the mode's rule for adding one.
    normalized = normalized_origin(origin, livemode=False)
    if normalized not in before:
        raise ResourceMissing(f"The origin {normalized!r} is not registered", param="origin")
    return await _change_origins(uow, before, [item for item in before if item != normalized])
