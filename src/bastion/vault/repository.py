"""All SQL of the vault. Only the vault's role (and the owner, for rotation) runs it."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bastion.platform.db import AnyRow, Connection, Tenant
from bastion.vault.envelope import Sealed
from bastion.vault.resources import CardTestingSignal

# Tokenization holds this advisory lock shared; retiring a key version takes it
# exclusively, so that no card can be written under a version while it is retired.
KEY_VERSIONS_LOCK = 0x0BA5_7C4B

_BEGIN_WRITE = (
    "SELECT set_config('bastion.merchant_id', $1, true), set_config('bastion.livemode', $2, true), "
    f"pg_advisory_xact_lock_shared({KEY_VERSIONS_LOCK})"
)
_SWEEP = "SELECT set_config('bastion.vault_sweep', 'on', true)"

_PUBLISHABLE_KEY = "SELECT * FROM vault_merchant_by_publishable_key($1)"
_RECORD_CARD_TESTING = "SELECT vault_record_card_testing($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
_ACTIVE_VERSION = "SELECT version FROM vault.key_versions WHERE state = 'active'"
# One statement writes the card, its CVC (when one was given) and the token. The key
# version must still be the active one when the statement starts (after the shared lock),
# or nothing is written and the caller retries with the new active version: once a
# rotation has begun, no new secret goes under the version it retires.
_INSERT_CARD = """
WITH version AS (
    SELECT version FROM vault.key_versions WHERE version = $4 AND state = 'active'
), card AS (
    INSERT INTO vault.cards (id, merchant_id, livemode, algorithm, key_version, wrapped_key, nonce, ciphertext,
                             fingerprint, brand, last4, exp_month, exp_year, funding, created_at, bin)
    SELECT $1, $2, $3, $5, version.version, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $23 FROM version
    RETURNING id
), cvc AS (
    INSERT INTO vault.cvcs (card_id, merchant_id, livemode, algorithm, key_version, wrapped_key, nonce, ciphertext, expires_at)
    SELECT card.id, $2, $3, $5, $4, $16, $17, $18, $19 FROM card WHERE $18::bytea IS NOT NULL
)
INSERT INTO vault.tokens (id, merchant_id, livemode, card_id, signals, created_at, expires_at)
SELECT $20, $2, $3, card.id, $21, $15, $22 FROM card
RETURNING id
"""
# A token is used once: the first exchange marks it and names the payment method.
_EXCHANGE = """
WITH used AS (
    UPDATE vault.tokens SET used_at = $4
    WHERE merchant_id = $1 AND livemode = $2 AND id = $3 AND used_at IS NULL AND expires_at > $4
    RETURNING card_id, signals
)
UPDATE vault.cards SET payment_method_id = $5
FROM used WHERE vault.cards.id = used.card_id
RETURNING vault.cards.*, used.signals
"""
_EXCHANGE_LOOKUP = """
SELECT c.*, t.used_at, t.signals
FROM vault.tokens t JOIN vault.cards c ON c.id = t.card_id
WHERE t.merchant_id = $1 AND t.livemode = $2 AND t.id = $3
"""
_CARD = "SELECT * FROM vault.cards WHERE merchant_id = $1 AND livemode = $2 AND id = $3 AND payment_method_id IS NOT NULL"
# The CVC serves one authorization: reading it deletes it.
_TAKE_CVC = """
DELETE FROM vault.cvcs WHERE merchant_id = $1 AND livemode = $2 AND card_id = $3 AND expires_at > $4
RETURNING algorithm, key_version, wrapped_key, nonce, ciphertext
"""

SWEEP_BATCH_MAX = 1_000
_DELETE_EXPIRED_CVCS = f"""
DELETE FROM vault.cvcs WHERE card_id IN (
    SELECT card_id FROM vault.cvcs WHERE expires_at <= $1 LIMIT {SWEEP_BATCH_MAX} FOR UPDATE SKIP LOCKED
)
"""
# A card whose token expired without being exchanged goes with its token (cascade).
_DELETE_ABANDONED_CARDS = f"""
DELETE FROM vault.cards WHERE id IN (
    SELECT c.id FROM vault.tokens t JOIN vault.cards c ON c.id = t.card_id
    WHERE t.expires_at <= $1 AND c.payment_method_id IS NULL
    LIMIT {SWEEP_BATCH_MAX} FOR UPDATE OF c SKIP LOCKED
)
"""

_KEY_VERSIONS = "SELECT * FROM vault.key_versions ORDER BY version"
_INSERT_KEY_VERSION = "INSERT INTO vault.key_versions (version, provider, state) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
_SET_KEY_STATE = (
    "UPDATE vault.key_versions SET state = $2, retired_at = CASE WHEN $2 = 'retired' THEN now() END WHERE version = $1"
)
_COUNTS_BY_VERSION = """
SELECT key_version, 'cards' AS kind, count(*) FROM vault.cards GROUP BY key_version
UNION ALL
SELECT key_version, 'cvcs', count(*) FROM vault.cvcs GROUP BY key_version
"""
_REFERENCED = """
SELECT EXISTS (SELECT 1 FROM vault.cards WHERE key_version = $1)
    OR EXISTS (SELECT 1 FROM vault.cvcs WHERE key_version = $1)
"""
_LOCK_KEY_VERSIONS = f"SELECT pg_advisory_xact_lock({KEY_VERSIONS_LOCK})"
_CVC_KEYS_LOCK = 0x0BA5_7C4D
_LOCK_CVC_KEYS = f"SELECT pg_advisory_xact_lock({_CVC_KEYS_LOCK})"
# Session-scoped: held by `bastion keys rotate` for its whole run, released by the server
# if the process dies.
_ROTATION_LOCK = 0x0BA5_7C4C
_TRY_LOCK_ROTATION = f"SELECT pg_try_advisory_lock({_ROTATION_LOCK})"
_UNLOCK_ROTATION = f"SELECT pg_advisory_unlock({_ROTATION_LOCK})"
# Rotation: the next rows still under an older version; rows in use by a concurrent
# exchange or forward are skipped this round and picked up by the next.
_STALE_CARDS = """
SELECT id AS record_id, merchant_id, algorithm, key_version, wrapped_key, nonce, ciphertext
FROM vault.cards WHERE key_version <> $1 ORDER BY key_version, id LIMIT $2 FOR UPDATE SKIP LOCKED
"""
_STALE_CVCS = """
SELECT card_id AS record_id, merchant_id, algorithm, key_version, wrapped_key, nonce, ciphertext
FROM vault.cvcs WHERE key_version <> $1 ORDER BY key_version, card_id LIMIT $2 FOR UPDATE SKIP LOCKED
"""
_REWRAP_CARDS = """
UPDATE vault.cards SET key_version = $1, wrapped_key = rewrapped.wrapped_key
FROM unnest($2::text[], $3::bytea[]) AS rewrapped (id, wrapped_key) WHERE vault.cards.id = rewrapped.id
"""
_REWRAP_CVCS = """
UPDATE vault.cvcs SET key_version = $1, wrapped_key = rewrapped.wrapped_key
FROM unnest($2::text[], $3::bytea[]) AS rewrapped (id, wrapped_key) WHERE vault.cvcs.card_id = rewrapped.id
"""
SEALED_TABLES = ("cards", "cvcs")


def sealed_from(row: AnyRow) -> Sealed:
    return Sealed(
        algorithm=row["algorithm"],
        key_version=row["key_version"],
        wrapped_key=row["wrapped_key"],
        nonce=row["nonce"],
        ciphertext=row["ciphertext"],
    )


async def begin_write(connection: Connection, tenant: Tenant) -> None:
    """Open a tenant's write: row-level security and the shared key-version lock."""
    await connection.execute(_BEGIN_WRITE, tenant.merchant_id, "true" if tenant.livemode else "false")


async def begin_sweep(connection: Connection) -> None:
    """Let this transaction see every merchant's rows (janitor and rotation only)."""
    await connection.execute(_SWEEP)


async def publishable_key(connection: Connection, publishable_hash: str) -> AnyRow | None:
    """The merchant, mode and registered origins of a publishable key, by its keyed hash."""
    row: AnyRow | None = await connection.fetchrow(_PUBLISHABLE_KEY, publishable_hash)
    return row


@dataclass(frozen=True, slots=True)
class CardTestingRecord:
    audit_id: uuid.UUID
    event_id: str
    signal: CardTestingSignal
    request_id: str | None
    created_at: datetime


async def record_card_testing(connection: Connection, tenant: Tenant, record: CardTestingRecord) -> None:
    """One audit row and one `radar.card_testing_suspected` event, in the API's tables."""
    await connection.execute(
        _RECORD_CARD_TESTING,
        record.audit_id,
        record.event_id,
        tenant.merchant_id,
        tenant.livemode,
        record.signal["id"],
        record.signal,
        # The audit row's own columns, as every audit row has them.
        record.signal["client_ip"],
        record.signal["device"],
        record.request_id,
        record.created_at,
    )


async def active_key_version(connection: Connection) -> int | None:
    version: int | None = await connection.fetchval(_ACTIVE_VERSION)
    return version


@dataclass(frozen=True, slots=True)
class NewCard:
    card_id: str
    token_id: str
    sealed_card: Sealed
    sealed_cvc: Sealed | None
    fingerprint: str
    brand: str
    last4: str
    # The number's first six digits: what a card's issuer and country are known by (PCI DSS
    # lets them be shown with the last four).
    bin: str
    exp_month: int
    exp_year: int
    funding: str
    signals: dict[str, Any]
    created_at: datetime
    token_expires_at: datetime
    cvc_expires_at: datetime


async def insert_card_and_token(connection: Connection, tenant: Tenant, card: NewCard) -> bool:
    """Write the card, its CVC and its token; False when the key version is no longer the active one."""
    cvc = card.sealed_cvc
    token_id: str | None = await connection.fetchval(
        _INSERT_CARD,
        card.card_id,
        tenant.merchant_id,
        tenant.livemode,
        card.sealed_card.key_version,
        card.sealed_card.algorithm,
        card.sealed_card.wrapped_key,
        card.sealed_card.nonce,
        card.sealed_card.ciphertext,
        card.fingerprint,
        card.brand,
        card.last4,
        card.exp_month,
        card.exp_year,
        card.funding,
        card.created_at,
        cvc.wrapped_key if cvc else None,
        cvc.nonce if cvc else None,
        cvc.ciphertext if cvc else None,
        card.cvc_expires_at,
        card.token_id,
        card.signals,
        card.token_expires_at,
        card.bin,
    )
    return token_id is not None


async def use_token(
    connection: Connection, tenant: Tenant, token_id: str, payment_method_id: str, moment: datetime
) -> AnyRow | None:
    """The token's card, now bound to `payment_method_id`; None if the token is not usable."""
    row: AnyRow | None = await connection.fetchrow(
        _EXCHANGE, tenant.merchant_id, tenant.livemode, token_id, moment, payment_method_id
    )
    return row


async def get_token(connection: Connection, tenant: Tenant, token_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_EXCHANGE_LOOKUP, tenant.merchant_id, tenant.livemode, token_id)
    return row


async def get_card(connection: Connection, tenant: Tenant, card_id: str) -> AnyRow | None:
    """An exchanged card (one behind a payment method)."""
    row: AnyRow | None = await connection.fetchrow(_CARD, tenant.merchant_id, tenant.livemode, card_id)
    return row


async def take_cvc(connection: Connection, tenant: Tenant, card_id: str, moment: datetime) -> Sealed | None:
    row: AnyRow | None = await connection.fetchrow(_TAKE_CVC, tenant.merchant_id, tenant.livemode, card_id, moment)
    return sealed_from(row) if row is not None else None


async def delete_expired(connection: Connection, moment: datetime) -> int:
    """One bounded batch of expired CVCs and abandoned cards; how many rows went."""
    cvcs = await connection.execute(_DELETE_EXPIRED_CVCS, moment)
    cards = await connection.execute(_DELETE_ABANDONED_CARDS, moment)
    return int(cvcs.split()[-1]) + int(cards.split()[-1])


async def key_versions(connection: Connection) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_KEY_VERSIONS)
    return rows


async def insert_key_version(connection: Connection, version: int, provider: str, state: str) -> None:
    await connection.execute(_INSERT_KEY_VERSION, version, provider, state)


async def set_key_state(connection: Connection, version: int, state: str) -> None:
    await connection.execute(_SET_KEY_STATE, version, state)


async def counts_by_version(connection: Connection) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {}
    for row in await connection.fetch(_COUNTS_BY_VERSION):
        counts.setdefault(row["key_version"], {})[row["kind"]] = row["count"]
    return counts


async def lock_key_versions(connection: Connection) -> None:
    """Wait until no tokenization is in flight, and keep new ones out until commit."""
    await connection.execute(_LOCK_KEY_VERSIONS)


async def lock_cvc_keys(connection: Connection) -> None:
    """One creator of CVC keys at a time, across vault processes, until commit."""
    await connection.execute(_LOCK_CVC_KEYS)


async def try_lock_rotation(connection: Connection) -> bool:
    locked: bool = await connection.fetchval(_TRY_LOCK_ROTATION)
    return locked


async def unlock_rotation(connection: Connection) -> None:
    await connection.execute(_UNLOCK_ROTATION)


async def is_referenced(connection: Connection, version: int) -> bool:
    referenced: bool = await connection.fetchval(_REFERENCED, version)
    return referenced


async def stale_rows(connection: Connection, table: str, active_version: int, limit: int) -> list[AnyRow]:
    query = _STALE_CARDS if table == "cards" else _STALE_CVCS
    rows: list[AnyRow] = await connection.fetch(query, active_version, limit)
    return rows


async def rewrap_rows(connection: Connection, table: str, version: int, ids: list[str], wrapped_keys: list[bytes]) -> None:
    await connection.execute(_REWRAP_CARDS if table == "cards" else _REWRAP_CVCS, version, ids, wrapped_keys)
