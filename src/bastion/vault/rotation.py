"""Key-encryption key versions: the first one, rotation, status.

Rotation re-wraps data keys: each card's and CVC's content ciphertext stays as it is, only
its data key is unwrapped with the old key-encryption key and wrapped with the new one.
Every step commits on its own and can be repeated, so a rotation killed at any point
(even with kill -9) is finished by running it again; every ciphertext decrypts at every
moment, because a version is retired only once nothing refers to it, and retiring keeps
the key itself (destroying it is a separate, deliberate act).
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bastion.kernel.clock import unix_seconds
from bastion.kernel.errors import ConfigurationError, invariant
from bastion.platform.db import Database
from bastion.vault import repository
from bastion.vault.envelope import binding, rewrap
from bastion.vault.keyring import KeyEncryptionKeys, missing_fingerprint_root

BATCH_SIZE_MAX = 10_000
# A tokenization whose write began just before a rotation made its new version active can
# still land under the old one (the write checks the version as its statement starts); such
# rows are re-wrapped by further passes, for at most _PASSES_MAX * _PASS_PAUSE_S.
_PASSES_MAX = 150
_PASS_PAUSE_S = 0.2
_PURPOSES = {"cards": "card", "cvcs": "cvc"}


@dataclass(frozen=True, slots=True)
class RotationReport:
    active_version: int
    retired_versions: list[int]
    rewrapped: int
    resumed: bool


async def ensure_key_version(database: Database, keys: KeyEncryptionKeys) -> int:
    """The active version, creating version 1 in the keyring and the database on first use."""
    async with database.transaction() as connection:
        versions = await repository.key_versions(connection)
    active = [row["version"] for row in versions if row["state"] == "active"]
    if active:
        _check_keyring_holds(versions, keys)
        return int(active[0])
    invariant(not versions, "key versions exist but none is active")
    # The install: the fingerprint root is made only here, never again (see the keyring).
    keys.create_fingerprint_root()
    keys.create_version(1)
    async with database.transaction() as connection:
        await repository.insert_key_version(connection, 1, keys.provider, "active")
    return 1


async def check_keyring(database: Database, keys: KeyEncryptionKeys) -> None:
    """`ConfigurationError` unless `keys` holds every key version in use and the fingerprint
    root: a vault process checks before it serves."""
    async with database.transaction() as connection:
        versions = await repository.key_versions(connection)
    if not any(row["state"] == "active" for row in versions):
        raise ConfigurationError("the vault has no key version yet: run `bastion migrate` first")
    _check_keyring_holds(versions, keys)


def _check_keyring_holds(versions: list[Any], keys: KeyEncryptionKeys) -> None:
    for row in versions:
        if row["state"] != "retired" and row["provider"] != keys.provider:
            raise ConfigurationError(
                f"key version {row['version']} lives in the {row['provider']} keyring, but the vault is configured "
                f"with {keys.provider}: set BASTION_VAULT_KEYRING={row['provider']}"
            )
        if row["state"] != "retired" and not keys.has_version(row["version"]):
            raise ConfigurationError(f"the {keys.provider} keyring does not hold key version {row['version']}")
    if not keys.has_fingerprint_root():
        raise missing_fingerprint_root(f"the {keys.provider} keyring")


async def _begin_rotation(database: Database, keys: KeyEncryptionKeys) -> tuple[int, bool]:
    """The version to rotate to: the active one if an earlier rotation left versions
    retiring (resume), otherwise a new one."""
    async with database.transaction() as connection:
        versions = await repository.key_versions(connection)
    _check_keyring_holds(versions, keys)
    active = next(row["version"] for row in versions if row["state"] == "active")
    if any(row["state"] == "retiring" for row in versions):
        return int(active), True
    new_version = max(row["version"] for row in versions) + 1
    # Created before it is recorded: a crash in between leaves a key nothing names yet,
    # which the next run finds again (create_version is idempotent).
    keys.create_version(new_version)
    async with database.transaction() as connection:
        await repository.set_key_state(connection, active, "retiring")
        await repository.insert_key_version(connection, new_version, keys.provider, "active")
    return new_version, False


async def _rewrap_batch(database: Database, keys: KeyEncryptionKeys, table: str, version: int, batch_size: int) -> int:
    async with database.transaction() as connection:
        await repository.begin_sweep(connection)
        rows = await repository.stale_rows(connection, table, version, batch_size)
        ids: list[str] = []
        wrapped_keys: list[bytes] = []
        for row in rows:
            aad = binding(row["record_id"], row["merchant_id"], _PURPOSES[table])
            ids.append(row["record_id"])
            wrapped_keys.append(rewrap(keys, repository.sealed_from(row), aad, version).wrapped_key)
        if ids:
            await repository.rewrap_rows(connection, table, version, ids, wrapped_keys)
    return len(ids)


async def _retire_unreferenced(database: Database) -> list[int]:
    retired: list[int] = []
    async with database.transaction() as connection:
        # Exclusive: waits for tokenizations in flight, so that none is missed by the check.
        await repository.lock_key_versions(connection)
        for row in await repository.key_versions(connection):
            if row["state"] == "retiring" and not await repository.is_referenced(connection, row["version"]):
                await repository.set_key_state(connection, row["version"], "retired")
                retired.append(row["version"])
    return retired


async def stale_count(database: Database) -> int:
    """Rows under a version that is not the active one: what a rotation still has to do."""
    async with database.transaction() as connection:
        active = await repository.active_key_version(connection)
        counts = await repository.counts_by_version(connection)
    return sum(sum(kinds.values()) for version, kinds in counts.items() if version != active)


async def rotate(
    database: Database, keys: KeyEncryptionKeys, *, batch_size: int, on_batch: Callable[[int], None] | None = None
) -> RotationReport:
    """Make a new key version active and move every data key to it (or finish an earlier
    rotation). One rotation at a time: a second one is refused while the first runs."""
    if not 1 <= batch_size <= BATCH_SIZE_MAX:
        raise ConfigurationError(f"the batch size must be between 1 and {BATCH_SIZE_MAX}")
    async with database.connection() as guard:
        if not await repository.try_lock_rotation(guard):
            raise ConfigurationError("another `bastion keys rotate` is running: let it finish")
        try:
            return await _rotate(database, keys, batch_size, on_batch)
        finally:
            await repository.unlock_rotation(guard)


async def _rotate(
    database: Database, keys: KeyEncryptionKeys, batch_size: int, on_batch: Callable[[int], None] | None
) -> RotationReport:
    version, resumed = await _begin_rotation(database, keys)
    rewrapped = 0
    retired: list[int] = []
    for _ in range(_PASSES_MAX):
        for table in repository.SEALED_TABLES:
            while done := await _rewrap_batch(database, keys, table, version, batch_size):
                rewrapped += done
                if on_batch is not None:
                    on_batch(done)
        retired += await _retire_unreferenced(database)
        if await _finished(database):
            return RotationReport(active_version=version, retired_versions=retired, rewrapped=rewrapped, resumed=resumed)
        # Rows held by an exchange or a forward right now, or written by a tokenization
        # that was already under way: give them a moment.
        await asyncio.sleep(_PASS_PAUSE_S)
    raise ConfigurationError(
        f"rows under older key versions were still in use after {_PASSES_MAX} passes: "
        "run `bastion keys rotate` again to finish (every ciphertext still decrypts)"
    )


async def _finished(database: Database) -> bool:
    async with database.transaction() as connection:
        versions = await repository.key_versions(connection)
    return await stale_count(database) == 0 and not any(row["state"] == "retiring" for row in versions)


async def key_status(database: Database) -> list[dict[str, Any]]:
    async with database.transaction() as connection:
        versions = await repository.key_versions(connection)
        counts = await repository.counts_by_version(connection)
    return [
        {
            "version": row["version"],
            "provider": row["provider"],
            "state": row["state"],
            "created": unix_seconds(row["created_at"]),
            "retired": unix_seconds(row["retired_at"]) if row["retired_at"] else None,
            "cards": counts.get(row["version"], {}).get("cards", 0),
            "cvcs": counts.get(row["version"], {}).get("cvcs", 0),
        }
        for row in versions
    ]
