"""Key rotation survives kill -9 at any moment: after every kill each card and CVC still opens
with the keyring, running `bastion keys rotate` again finishes the job, and a key version is
retired only once nothing refers to it (not even a write still in flight). On the local
keyring and on a SoftHSM2 token."""

import asyncio
import json
import re
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from bastion import bootstrap
from bastion.kernel.clock import SYSTEM_CLOCK
from bastion.kernel.ids import new_id
from bastion.platform.db import Database, Tenant
from bastion.platform.settings import Settings
from bastion.vault import repository, rotation, service
from bastion.vault.cvc_keys import CVC_TTL
from bastion.vault.domain import CardDetails
from bastion.vault.envelope import binding, fingerprint, seal
from bastion.vault.keyring import KeyEncryptionKeys, Pkcs11KeyEncryptionKeys
from bastion.vault.service import Vault
from tests.support.cli import run_bastion
from tests.support.platform import Platform
from tests.support.postgres import TestDatabase, migrated_database
from tests.support.softhsm import SoftHsmToken
from tests.support.vault import NEXT_YEAR, VISA, Opened, open_every_card, settings_for, tokenize_in_process, vault_in_process

pytestmark = pytest.mark.slow

# (number, CVC length): three brands, so that the envelopes differ in size.
CARDS = (("4242424242424242", 3), ("5555555555554444", 3), ("378282246310005", 4))
CARD_COUNT = 300
BATCH_SIZE = 7
# Where the kills land, as data keys already under the new version (cards first, then CVCs,
# 600 in all): right after the new version became active, then across both tables. The
# last leaves room (120 keys, some 17 batches) for the poll below to catch it in time.
KILL_AT_MOVED = (0, 120, 240, 360, 480)
# 300 data keys, one a batch: after the kill point some 298 batches are left, so a test process
# paused for a moment between seeing the kill point and killing (a loaded machine) still lands
# mid-rotation. SoftHSM moves a batch in well under a millisecond: 95 batches of two were once
# all done before the kill landed (CI).
PKCS11_CARD_COUNT = 150
PKCS11_BATCH_SIZE = 1
PKCS11_KILL_AT_MOVED = 2
TOKENIZE_CONCURRENCY = 20
POLL_INTERVAL_S = 0.005
KILL_WAIT_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LOCK_WAIT_TIMEOUT_S = 10.0
_STATUS_LINE = re.compile(r"v(\d+)\s+(\w+)\s+(\w+)\s+cards\s+(\d+)\s+cvcs\s+(\d+)")
_MOVED = """
SELECT v.version,
    (SELECT count(*) FROM vault.cards WHERE key_version = v.version)
    + (SELECT count(*) FROM vault.cvcs WHERE key_version = v.version) AS moved
FROM vault.key_versions v WHERE v.state = 'active'
"""
_ADVISORY_WAITERS = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1"


async def _create_cards(vault: service.Vault, publishable_keys: list[str], count: int) -> dict[str, tuple[str, str]]:
    """`count` cards with CVCs, through the vault's own tokenization, spread over the merchants
    of `publishable_keys`; what each must open to (number, CVC), by token id."""
    expected: dict[str, tuple[str, str]] = {}
    for start in range(0, count, TOKENIZE_CONCURRENCY):
        batch = []
        for index in range(start, min(start + TOKENIZE_CONCURRENCY, count)):
            number, cvc_length = CARDS[index % len(CARDS)]
            batch.append((publishable_keys[index % len(publishable_keys)], number, f"{index:04d}"[-cvc_length:]))
        tokens = await asyncio.gather(*(tokenize_in_process(vault, key, number=number, cvc=cvc) for key, number, cvc in batch))
        for token, (_, number, cvc) in zip(tokens, batch, strict=True):
            expected[token] = (number, cvc)
    return expected


async def _publishable_keys(database: TestDatabase, settings: Settings, count: int) -> list[str]:
    platform = Platform(database, settings)
    try:
        return [(await platform.merchant()).publishable for _ in range(count)]
    finally:
        await platform.close()


async def _open_all(owner: Database, keys: KeyEncryptionKeys) -> dict[str, Opened]:
    async with owner.transaction() as connection:
        return await open_every_card(connection, keys)


def _assert_all_open(opened: dict[str, Opened], expected: dict[str, tuple[str, str]], versions: set[int]) -> None:
    """Every card and CVC opened to what was tokenized, under one of `versions` (and no other)."""
    assert opened.keys() == expected.keys()
    for token, card in opened.items():
        assert (card.number, card.cvc) == expected[token], token
        assert {card.key_version, card.cvc_key_version} <= versions, token


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-3000:]


async def _kill_when_moved(owner: Database, env: dict[str, str], batch_size: int, version: int, moved_min: int) -> None:
    """Start `bastion keys rotate`, kill -9 it once `version` is active and wraps at least
    `moved_min` data keys, and check that the kill landed before the rotation was done."""
    log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in the finally below, after the process)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bastion", "keys", "rotate", "--batch-size", str(batch_size), env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + KILL_WAIT_TIMEOUT_S
        while True:
            async with owner.transaction() as connection:
                active = await connection.fetchrow(_MOVED)
            if active["version"] == version and active["moved"] >= moved_min:
                break
            assert process.returncode is None, f"the rotation ended before the kill: {_tail(log)}"
            assert time.monotonic() < deadline, f"not {moved_min} keys moved within {KILL_WAIT_TIMEOUT_S} s: {_tail(log)}"
            await asyncio.sleep(POLL_INTERVAL_S)
        process.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S) == -signal.SIGKILL
        assert await rotation.stale_count(owner) > 0, "the kill must land mid-rotation"
    finally:
        if process.returncode is None:
            process.kill()
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        log.close()


def _summary(versions: list[dict[str, Any]]) -> list[tuple[int, str, str, int, int]]:
    """Key versions as (version, state, provider, cards, CVCs)."""
    return [(row["version"], row["state"], row["provider"], row["cards"], row["cvcs"]) for row in versions]


async def _status(env: dict[str, str]) -> list[tuple[int, str, str, int, int]]:
    """`bastion keys status --json`, summed up."""
    ran = await run_bastion("keys", "status", "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    return _summary(json.loads(ran.stdout))


def _status_line(line: str) -> tuple[str, ...]:
    """A version's line of `bastion keys status`: version, state, provider, cards, CVCs."""
    match = _STATUS_LINE.fullmatch(line)
    assert match is not None, line
    return match.groups()


async def test_rotation_killed_again_and_again_then_finished(private_database: TestDatabase) -> None:
    settings = settings_for(private_database)
    env = private_database.env()
    owner = bootstrap.owner_database(private_database.owner_url)
    publishable_keys = await _publishable_keys(private_database, settings, 2)
    try:
        async with vault_in_process(settings) as vault:
            expected = await _create_cards(vault, publishable_keys, CARD_COUNT)
            # This vault has just read version 1 as the active one, and keeps it in memory.
            assert await vault.active_version(refresh=True) == 1
            for kill, moved_min in enumerate(KILL_AT_MOVED):
                await _kill_when_moved(owner, env, BATCH_SIZE, 2, moved_min)
                _assert_all_open(await _open_all(owner, vault.keys), expected, {1, 2})
                if kill == 0:
                    # A rotation has begun: new cards go under the new version, also from
                    # a vault that still remembers the old one as active.
                    token = await tokenize_in_process(vault, publishable_keys[0], cvc="321")
                    expected[token] = (VISA, "321")
                    created = (await _open_all(owner, vault.keys))[token]
                    assert (created.key_version, created.cvc_key_version) == (2, 2)

            finished = await run_bastion("keys", "rotate", "--batch-size", str(BATCH_SIZE), env=env)
            assert finished.returncode == 0, finished.stderr
            assert "active key version: v2 (finished an interrupted rotation)" in finished.stdout
            assert finished.stdout.rstrip().endswith("retired: v1")
            _assert_all_open(await _open_all(owner, vault.keys), expected, {2})
            count = len(expected)
            assert await _status(env) == [(1, "retired", "local", 0, 0), (2, "active", "local", count, count)]

            again = await run_bastion("keys", "rotate", "--batch-size", str(BATCH_SIZE), env=env)
            assert again.returncode == 0, again.stderr
            assert f"active key version: v3; re-wrapped {2 * count}; retired: v2" in again.stdout
            _assert_all_open(await _open_all(owner, vault.keys), expected, {3})
            text = await run_bastion("keys", "status", env=env)
            assert text.returncode == 0, text.stderr
            keyring, *lines = text.stdout.splitlines()
            assert keyring == "keyring: local"
            assert [_status_line(line) for line in lines] == [
                ("1", "retired", "local", "0", "0"),
                ("2", "retired", "local", "0", "0"),
                ("3", "active", "local", str(count), str(count)),
            ]
            # Retired, not destroyed: every version's key is still in the keyring.
            assert all(vault.keys.has_version(version) for version in (1, 2, 3))
    finally:
        await owner.dispose()


async def _written_by_hand(vault: Vault, version: int, merchant_id: str) -> repository.NewCard:
    """The rows tokenization writes for a Visa with CVC 123, sealed under `version`."""
    card = CardDetails(number=VISA, exp_month=12, exp_year=NEXT_YEAR, cvc="123", name=None)
    card_id, moment = new_id("crd"), SYSTEM_CLOCK.now()
    keys, cvc_aad = vault.keys, binding(card_id, merchant_id, "cvc")
    return repository.NewCard(
        card_id=card_id,
        token_id=new_id("tok"),
        sealed_card=seal(keys, version, service._card_plaintext(card), binding(card_id, merchant_id, "card")),
        sealed_cvc=seal(keys, version, await vault.cvc_keys.seal(vault.database, "123", cvc_aad, moment), cvc_aad),
        fingerprint=fingerprint(keys, Tenant(merchant_id, livemode=False), VISA),
        brand=card.brand.value,
        last4=card.last4,
        bin=card.bin,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        funding=card.funding,
        signals={},
        created_at=moment,
        token_expires_at=moment + service.TOKEN_TTL,
        cvc_expires_at=moment + CVC_TTL,
    )


async def _states(owner: Database) -> dict[int, str]:
    async with owner.transaction() as connection:
        return {row["version"]: row["state"] for row in await repository.key_versions(connection)}


async def _rewrap_all(owner: Database, keys: KeyEncryptionKeys, table: str, version: int) -> None:
    while await rotation._rewrap_batch(owner, keys, table, version, BATCH_SIZE):
        pass


async def test_a_version_is_not_retired_while_a_row_refers_to_it(private_database: TestDatabase) -> None:
    settings = settings_for(private_database)
    owner = bootstrap.owner_database(private_database.owner_url)
    publishable_keys = await _publishable_keys(private_database, settings, 1)
    try:
        async with vault_in_process(settings) as vault:
            expected = await _create_cards(vault, publishable_keys, 10)
            assert await rotation._begin_rotation(owner, vault.keys) == (2, False)
            await _rewrap_all(owner, vault.keys, "cards", 2)
            # The CVCs are still under version 1.
            assert await rotation._retire_unreferenced(owner) == []
            assert await _states(owner) == {1: "retiring", 2: "active"}
            _assert_all_open(await _open_all(owner, vault.keys), expected, {1, 2})

            report = await rotation.rotate(owner, vault.keys, batch_size=BATCH_SIZE)
            assert (report.active_version, report.retired_versions, report.rewrapped, report.resumed) == (2, [1], 10, True)
            assert await _states(owner) == {1: "retired", 2: "active"}
            _assert_all_open(await _open_all(owner, vault.keys), expected, {2})
    finally:
        await owner.dispose()


async def _until_waiting_for_the_key_versions_lock(owner: Database) -> None:
    deadline = time.monotonic() + LOCK_WAIT_TIMEOUT_S
    while True:
        async with owner.transaction() as connection:
            if await connection.fetchval(_ADVISORY_WAITERS, repository.KEY_VERSIONS_LOCK):
                return
        assert time.monotonic() < deadline, "nothing waits for the key versions lock"
        await asyncio.sleep(POLL_INTERVAL_S)


async def test_retiring_waits_for_a_card_being_written(private_database: TestDatabase) -> None:
    """A card written under the old version, committed only after the re-wrap pass: the
    retirement waits for the write, sees the card, and leaves the version retiring."""
    settings = settings_for(private_database)
    owner = bootstrap.owner_database(private_database.owner_url)
    publishable_keys = await _publishable_keys(private_database, settings, 1)
    try:
        async with vault_in_process(settings) as vault:
            expected = await _create_cards(vault, publishable_keys, 10)
            tenant = (await vault.publishable_key(publishable_keys[0])).tenant
            held = await _written_by_hand(vault, 1, tenant.merchant_id)
            async with vault.database.transaction() as writing:
                # As tokenization does: the shared lock, then the write under the active version.
                await repository.begin_write(writing, tenant)
                assert await repository.insert_card_and_token(writing, tenant, held)
                assert await asyncio.wait_for(rotation._begin_rotation(owner, vault.keys), LOCK_WAIT_TIMEOUT_S) == (2, False)
                for table in repository.SEALED_TABLES:
                    await _rewrap_all(owner, vault.keys, table, 2)
                retiring = asyncio.create_task(rotation._retire_unreferenced(owner))
                await _until_waiting_for_the_key_versions_lock(owner)
                assert not retiring.done()
            assert await asyncio.wait_for(retiring, LOCK_WAIT_TIMEOUT_S) == []
            assert await _states(owner) == {1: "retiring", 2: "active"}

            # Refused now: a rotation has begun, so no new secret goes under version 1.
            async with vault.database.transaction() as late:
                await repository.begin_write(late, tenant)
                assert not await repository.insert_card_and_token(
                    late, tenant, await _written_by_hand(vault, 1, tenant.merchant_id)
                )

            report = await rotation.rotate(owner, vault.keys, batch_size=BATCH_SIZE)
            assert (report.retired_versions, report.rewrapped) == ([1], 2)
            expected[held.token_id] = (VISA, "123")
            _assert_all_open(await _open_all(owner, vault.keys), expected, {2})
    finally:
        await owner.dispose()


@pytest.fixture
def hsm_database(pg_server: tuple[str, Path | None], softhsm_token: SoftHsmToken) -> Iterator[TestDatabase]:
    """A private database whose vault keys live on the SoftHSM2 token from version 1 on."""
    keys = Pkcs11KeyEncryptionKeys(softhsm_token.module_path, softhsm_token.token_label, softhsm_token.pin)
    try:
        with migrated_database(*pg_server, vault_keys=keys) as database:
            yield database
    finally:
        keys.close()


async def test_rotation_on_an_hsm_killed_then_finished(hsm_database: TestDatabase, softhsm_token: SoftHsmToken) -> None:
    hsm = {
        "BASTION_VAULT_KEYRING": "pkcs11",
        "BASTION_PKCS11_MODULE": softhsm_token.module_path,
        "BASTION_PKCS11_TOKEN_LABEL": softhsm_token.token_label,
        "BASTION_PKCS11_PIN": softhsm_token.pin,
    }
    env = {**hsm_database.env(), "SOFTHSM2_CONF": str(softhsm_token.conf_path), **hsm}
    settings = settings_for(
        hsm_database,
        vault_keyring="pkcs11",
        pkcs11_module=softhsm_token.module_path,
        pkcs11_token_label=softhsm_token.token_label,
        pkcs11_pin=softhsm_token.pin,
    )
    owner = bootstrap.owner_database(hsm_database.owner_url)
    publishable_keys = await _publishable_keys(hsm_database, settings, 2)
    try:
        async with vault_in_process(settings) as vault:
            assert vault.keys.provider == "pkcs11"
            expected = await _create_cards(vault, publishable_keys, PKCS11_CARD_COUNT)
            await _kill_when_moved(owner, env, PKCS11_BATCH_SIZE, 2, PKCS11_KILL_AT_MOVED)
            _assert_all_open(await _open_all(owner, vault.keys), expected, {1, 2})

            finished = await run_bastion("keys", "rotate", "--batch-size", str(PKCS11_BATCH_SIZE), env=env)
            assert finished.returncode == 0, finished.stderr
            assert "active key version: v2 (finished an interrupted rotation)" in finished.stdout
            _assert_all_open(await _open_all(owner, vault.keys), expected, {2})
            count = PKCS11_CARD_COUNT
            assert _summary(await rotation.key_status(owner)) == [
                (1, "retired", "pkcs11", 0, 0),
                (2, "active", "pkcs11", count, count),
            ]
    finally:
        await owner.dispose()


async def test_a_second_rotation_is_refused_while_one_runs(private_database: TestDatabase) -> None:
    owner = bootstrap.owner_database(private_database.owner_url)
    try:
        async with owner.connection() as holder:
            assert await repository.try_lock_rotation(holder), "stands in for a rotation in progress"
            try:
                refused = await run_bastion("keys", "rotate", env=private_database.env())
            finally:
                await repository.unlock_rotation(holder)
        assert refused.returncode == 1
        assert "another `bastion keys rotate` is running" in refused.stderr
        assert [row["state"] for row in await rotation.key_status(owner)] == ["active"], "nothing changed"
        finished = await run_bastion("keys", "rotate", env=private_database.env())
        assert finished.returncode == 0, finished.stderr
    finally:
        await owner.dispose()
