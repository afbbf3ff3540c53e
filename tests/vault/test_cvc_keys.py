"""CVCs are sealed under the key of their hour, destroyed on a schedule (vault/cvc_keys.py):
once it is gone, no copy of the row opens, even with the key-encryption keys intact, which is
what a backup holds. Both keyrings: key files and an HSM.

The clock stands in the past: the sweep destroys every key due by its time, and the session's
HSM token holds the real hour's keys of other tests, which must not be due."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bastion import bootstrap
from bastion.platform.db import Database
from bastion.platform.settings import Settings
from bastion.vault import service
from bastion.vault.cvc_keys import CVC_KEY_PERIOD, CVC_TTL, destruction_due, epoch_of
from bastion.vault.envelope import binding
from bastion.vault.errors import DecryptionFailed
from bastion.vault.keyring import Pkcs11KeyEncryptionKeys
from tests.support.clock import ManualClock
from tests.support.platform import Platform
from tests.support.postgres import TestDatabase, migrated_database
from tests.support.softhsm import SoftHsmToken
from tests.support.vault import VISA, open_every_card, settings_for, tokenize_in_process, vault_in_process

# Ten minutes into an hour, weeks ago.
_START = datetime.now(UTC).replace(minute=10, second=0, microsecond=0) - timedelta(days=30)
# What a backup holds of one tokenization: the card, its token and its CVC, in the order they restore.
_BACKED_UP = {
    "cards": "SELECT * FROM vault.cards WHERE id = $1",
    "tokens": "SELECT * FROM vault.tokens WHERE card_id = $1",
    "cvcs": "SELECT * FROM vault.cvcs WHERE card_id = $1",
}
_CARD_OF_TOKEN = "SELECT card_id FROM vault.tokens WHERE id = $1"


@pytest.fixture(params=["local", "pkcs11"])
def keyring_settings(request: pytest.FixtureRequest, pg_server: tuple[str, Path | None]) -> Iterator[Settings]:
    """A private database whose vault keys are key files, or on the session's SoftHSM2 token."""
    if request.param == "local":
        with migrated_database(*pg_server) as database:
            yield settings_for(database)
        return
    token: SoftHsmToken = request.getfixturevalue("softhsm_token")
    keys = Pkcs11KeyEncryptionKeys(token.module_path, token.token_label, token.pin)
    try:
        with migrated_database(*pg_server, vault_keys=keys) as database:
            yield settings_for(
                database,
                vault_keyring="pkcs11",
                pkcs11_module=token.module_path,
                pkcs11_token_label=token.token_label,
                pkcs11_pin=token.pin,
            )
    finally:
        keys.close()


@asynccontextmanager
async def _vault_and_owner(settings: Settings, clock: ManualClock) -> AsyncIterator[tuple[service.Vault, Database, str]]:
    """A vault on `clock`, the owner's database, and a merchant's publishable key."""
    assert settings.database_url is not None
    database = TestDatabase(settings.database_url, settings.db_role_prefix, settings.data_dir, None)
    platform = Platform(database, settings)
    owner = bootstrap.owner_database(settings.database_url)
    try:
        publishable = (await platform.merchant()).publishable
        async with vault_in_process(settings, clock) as vault:
            yield vault, owner, publishable
    finally:
        await platform.close()
        await owner.dispose()


async def _backup(owner: Database, token: str) -> dict[str, dict[str, Any]]:
    async with owner.transaction() as connection:
        card_id = await connection.fetchval(_CARD_OF_TOKEN, token)
        rows = {table: await connection.fetchrow(query, card_id) for table, query in _BACKED_UP.items()}
    assert all(row is not None for row in rows.values()), rows
    return {table: dict(row) for table, row in rows.items() if row is not None}


async def _restore(owner: Database, backup: dict[str, dict[str, Any]]) -> None:
    """The backup's rows written back as they were, as a restore would (the owner bypasses row-level security)."""
    async with owner.transaction() as connection:
        for table, row in backup.items():
            # The column names are the table's own, read back from it just above; the values are parameters.
            columns = ", ".join(row)
            values = ", ".join(f"${index}" for index in range(1, len(row) + 1))
            await connection.execute(
                f"INSERT INTO vault.{table} ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING",
                *row.values(),
            )


async def _cvcs(owner: Database, keys: Any) -> dict[str, str | None]:
    async with owner.transaction() as connection:
        return {token: opened.cvc for token, opened in (await open_every_card(connection, keys)).items()}


async def test_a_cvc_cannot_be_opened_from_a_backup_once_its_hours_key_is_destroyed(keyring_settings: Settings) -> None:
    clock = ManualClock(_START)
    epoch = epoch_of(_START)
    async with _vault_and_owner(keyring_settings, clock) as (vault, owner, publishable):
        token = await tokenize_in_process(vault, publishable)
        backup = await _backup(owner, token)
        assert await _cvcs(owner, vault.keys) == {token: "123"}

        # Long expired and swept, but its hour's key is still there: a backup of it still opens.
        clock.moment = destruction_due(epoch) - timedelta(seconds=1)
        await service.sweep(vault)
        assert await _cvcs(owner, vault.keys) == {}
        assert vault.keys.has_cvc_key(epoch)
        await _restore(owner, backup)
        assert await _cvcs(owner, vault.keys) == {token: "123"}

        clock.moment = destruction_due(epoch)
        await service.sweep(vault)
        assert await _cvcs(owner, vault.keys) == {}
        assert not vault.keys.has_cvc_key(epoch)
        assert epoch not in vault.keys.cvc_key_epochs()
        await _restore(owner, backup)
        # The key-encryption key is intact: the card and the CVC's envelope open, the CVC inside does not.
        async with owner.transaction() as connection:
            opened = (await open_every_card(connection, vault.keys))[token]
        assert (opened.number, opened.cvc) == (VISA, None)


async def test_the_sweep_makes_the_next_hours_key_ahead_and_destroys_each_on_time(keyring_settings: Settings) -> None:
    clock = ManualClock(_START)
    epoch = epoch_of(_START)
    async with _vault_and_owner(keyring_settings, clock) as (vault, _owner, _publishable):
        await service.sweep(vault)
        assert {epoch, epoch + 1} <= set(vault.keys.cvc_key_epochs())
        clock.advance(CVC_KEY_PERIOD)
        await service.sweep(vault)
        assert {epoch, epoch + 1, epoch + 2} <= set(vault.keys.cvc_key_epochs())
        # An hour's key lives through its hour and CVC_TTL after it, and no longer.
        assert destruction_due(epoch) == datetime.fromtimestamp(0, UTC) + CVC_KEY_PERIOD * (epoch + 1) + CVC_TTL
        clock.moment = destruction_due(epoch + 1)
        await service.sweep(vault)
        kept = set(vault.keys.cvc_key_epochs())
        assert {epoch, epoch + 1}.isdisjoint(kept)
        assert {epoch + 2, epoch + 3} <= kept


async def test_concurrent_tokenizations_in_a_new_hour_make_one_key(keyring_settings: Settings) -> None:
    moment = _START + timedelta(days=3)
    epoch = epoch_of(moment)
    async with _vault_and_owner(keyring_settings, ManualClock(moment)) as (vault, _owner, _publishable):
        assert not vault.keys.has_cvc_key(epoch)
        bindings = [binding(f"crd_{index}", "mer_1", "cvc") for index in range(10)]
        sealed = await asyncio.gather(*(vault.cvc_keys.seal(vault.database, "4321", aad, moment) for aad in bindings))
        assert vault.keys.cvc_key_epochs().count(epoch) == 1
        # One key opens them all: on an HSM a second key of the same label would be refused.
        assert [vault.cvc_keys.open(each, aad, moment) for each, aad in zip(sealed, bindings, strict=True)] == ["4321"] * 10
        vault.keys.destroy_cvc_key(epoch)


async def test_a_cvc_moved_to_another_hour_or_card_does_not_open(keyring_settings: Settings) -> None:
    moment = _START + timedelta(days=6)
    epoch = epoch_of(moment)
    async with _vault_and_owner(keyring_settings, ManualClock(moment)) as (vault, _owner, _publishable):
        aad = binding("crd_1", "mer_1", "cvc")
        sealed = await vault.cvc_keys.seal(vault.database, "4321", aad, moment)
        await vault.cvc_keys.seal(vault.database, "0000", aad, moment + CVC_KEY_PERIOD)
        relabelled = (epoch + 1).to_bytes(8, "big") + sealed[8:]
        for tampered, tampered_aad in ((relabelled, aad), (sealed, binding("crd_2", "mer_1", "cvc"))):
            with pytest.raises(DecryptionFailed):
                vault.cvc_keys.open(tampered, tampered_aad, moment)
        assert vault.cvc_keys.open(sealed, aad, moment) == "4321"
        for each in (epoch, epoch + 1):
            vault.keys.destroy_cvc_key(each)


async def test_a_vault_process_stops_using_an_hours_key_at_its_time_without_the_janitor(keyring_settings: Settings) -> None:
    moment = _START + timedelta(days=9)
    epoch = epoch_of(moment)
    async with _vault_and_owner(keyring_settings, ManualClock(moment)) as (vault, _owner, _publishable):
        aad = binding("crd_1", "mer_1", "cvc")
        sealed = await vault.cvc_keys.seal(vault.database, "4321", aad, moment)
        assert vault.cvc_keys.open(sealed, aad, destruction_due(epoch) - timedelta(seconds=1)) == "4321"
        assert vault.cvc_keys.open(sealed, aad, destruction_due(epoch)) is None
        # The keyring still holds it until the janitor's next round; this process no longer does.
        assert vault.keys.has_cvc_key(epoch)
        vault.keys.destroy_cvc_key(epoch)
