"""The audit trail end to end: what each change records, who may not rewrite it, the
sealed chain and its checkpoints, every kind of tampering caught at the exact seq by
`verify_chain` and by the real `bastion audit verify`, and the worker sealing rows that
the API wrote.

Tampering runs on a private database per test, never on the session's."""

import asyncio
import dataclasses
import itertools
import json
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asyncpg.exceptions import InsufficientPrivilegeError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion import bootstrap, events
from bastion.audit import (
    FileCheckpointLog,
    VerifyReport,
    anchor_latest,
    chain,
    record,
    repository,
    seal_backlog,
    seal_pending,
    verify_chain,
)
from bastion.audit.tables import audit_events
from bastion.events import repository as events_repository
from bastion.kernel.errors import InvariantViolated
from bastion.kernel.ids import new_id
from bastion.platform.crypto import LocalKeyring
from bastion.platform.db import Actor, Connection, Database, Tenant, UnitOfWork
from bastion.platform.settings import Settings
from tests.support.cli import run_bastion
from tests.support.platform import Credentials, Platform
from tests.support.postgres import TestDatabase, cloned_database, migrated_database

WORKER_SEAL_WAIT_S = 30
PROCESS_STOP_TIMEOUT_S = 10
# The private chain: 10 rows sealed in batches of 4, so checkpoints at seqs 4, 8 and 10.
CHAIN_ROW_COUNT = 10
CHAIN_BATCH_SIZE = 4
INSUFFICIENT_PRIVILEGE = "42501"


# --- what a change records -------------------------------------------------------------


async def test_every_customer_mutation_writes_an_audit_row(platform: Platform, merchant: Credentials) -> None:
    started = datetime.now(UTC)
    async with platform.client(merchant) as client:
        created = await client.post("/v1/customers", json={"name": "Jenny Rosen", "email": "jenny@example.com"})
        customer_id = created.json()["id"]
        updated = await client.post(f"/v1/customers/{customer_id}", json={"name": "Jenny R.", "metadata": {"tier": "gold"}})
        rejected = await client.post(f"/v1/customers/{customer_id}", json={"email": "not-an-email"})
        deleted = await client.delete(f"/v1/customers/{customer_id}")
    finished = datetime.now(UTC)
    assert [created.status_code, updated.status_code, rejected.status_code, deleted.status_code] == [200, 200, 400, 200]

    async with platform.owner.transaction() as connection:
        rows = await repository.events_for_resource(connection, customer_id)
    expected = [
        ("customer.create", None, created.json(), created),
        ("customer.update", created.json(), updated.json(), updated),
        ("customer.delete", updated.json(), None, deleted),
    ]
    assert len(rows) == len(expected), "the rejected update must write no audit row"
    for row, (action_type, before, after, response) in zip(rows, expected, strict=True):
        assert row["action_type"] == action_type
        assert row["actor"] == merchant.key_id
        assert (row["merchant_id"], row["livemode"]) == (merchant.merchant_id, False)
        assert (row["resource_type"], row["resource_id"]) == ("customer", customer_id)
        assert row["before_state"] == before
        assert row["after_state"] == after
        assert str(row["ip_address"]) == "127.0.0.1"
        assert row["request_id"] == response.headers["Request-Id"]
        assert started <= row["created_at"] <= finished


async def test_the_device_id_header_reaches_the_audit_row(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        created = await client.post("/v1/customers", json={"name": "Ada"}, headers={"Bastion-Device-Id": "dev_checkout_7"})
        untagged = await client.post("/v1/customers", json={"name": "Grace"})
    async with platform.owner.transaction() as connection:
        [tagged_row] = await repository.events_for_resource(connection, created.json()["id"])
        [untagged_row] = await repository.events_for_resource(connection, untagged.json()["id"])
    assert tagged_row["device_id"] == "dev_checkout_7"
    assert untagged_row["device_id"] is None


async def test_a_unit_of_works_rows_are_written_at_its_commit_in_their_order(platform: Platform, merchant: Credentials) -> None:
    """Audit rows and events are queued in the unit of work and written in one statement each
    before it commits: in the order recorded, and not at all when the unit fails."""
    tenant = Tenant(merchant.merchant_id, livemode=False)
    customer_id = new_id("cus")
    actions = [f"customer.step_{step}" for step in range(5)]

    async def changes(uow: UnitOfWork) -> list[str]:
        for step, action in enumerate(actions):
            record(
                uow,
                action_type=action,
                resource_type="customer",
                resource_id=customer_id,
                before=None,
                after={"id": customer_id, "step": step},
            )
        return [events.emit(uow, "customer.updated", {"id": customer_id, "step": step}) for step in range(3)]

    refused_events: list[str] = []

    async def refused() -> None:
        async with platform.services.database.unit_of_work(tenant, Actor(id="test")) as uow:
            refused_events.extend(await changes(uow))
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        await refused()
    async with platform.services.database.unit_of_work(tenant, Actor(id="test")) as uow:
        written_events = await changes(uow)

    async with platform.owner.transaction() as connection:
        rows = await repository.events_for_resource(connection, customer_id)
        found = [await events_repository.get(connection, tenant, event_id) for event_id in refused_events + written_events]
    assert [row["action_type"] for row in rows] == actions, "one row per record, in insert_order as recorded"
    assert [row["after_state"]["step"] for row in rows] == list(range(5))
    assert [row is not None for row in found] == [False] * 3 + [True] * 3
    assert [row["data"]["object"]["step"] for row in found[3:] if row is not None] == [0, 1, 2]


async def test_merchant_api_key_and_origin_changes_write_audit_rows(platform: Platform) -> None:
    credentials = await platform.merchant(name="Audited shop")
    await platform.allow_origin(credentials, "https://shop.example")
    async with platform.owner.transaction() as connection:
        merchant_rows = await repository.events_for_resource(connection, credentials.merchant_id)
        [key_row] = await repository.events_for_resource(connection, credentials.key_id)
    assert [(row["action_type"], row["resource_type"]) for row in merchant_rows] == [
        ("merchant.create", "merchant"),
        ("merchant.allowed_origins.update", "merchant"),
    ]
    created, origins = merchant_rows
    assert created["before_state"] is None
    assert created["after_state"]["name"] == "Audited shop"
    assert origins["before_state"]["allowed_origins"] == []
    assert origins["after_state"]["allowed_origins"] == ["https://shop.example"]
    assert (key_row["action_type"], key_row["resource_type"], key_row["merchant_id"]) == (
        "api_key.create",
        "api_key",
        credentials.merchant_id,
    )
    # Shown once, never kept: no secret in the audit row.
    assert credentials.secret not in str(key_row["after_state"])
    assert credentials.publishable not in str(key_row["after_state"])


# --- who may not rewrite it ------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "statement"),
    [
        ("app", "UPDATE audit_events SET actor = 'forger'"),
        ("app", "DELETE FROM audit_events"),
        ("app", "TRUNCATE audit_events"),
        ("app", "DELETE FROM audit_seal_queue"),
        ("app", "DELETE FROM audit_seals"),
        ("worker", "UPDATE audit_events SET actor = 'forger'"),
        ("worker", "DELETE FROM audit_events"),
        ("worker", "UPDATE audit_seals SET row_hash = 'forged'"),
        ("worker", "DELETE FROM audit_seals"),
        ("worker", "DELETE FROM audit_checkpoints"),
    ],
)
async def test_service_roles_cannot_rewrite_the_audit_trail(
    platform: Platform, worker_database: Database, role: str, statement: str
) -> None:
    database = platform.services.database if role == "app" else worker_database
    with pytest.raises(InsufficientPrivilegeError) as raised:
        async with database.transaction() as connection:
            await connection.execute(statement)
    assert raised.value.sqlstate == INSUFFICIENT_PRIVILEGE, raised.value


# --- a private chain to tamper with ----------------------------------------------------


@dataclass
class Chain:
    database: TestDatabase
    owner: Database
    sealer: Database
    keyring: LocalKeyring
    # The external checkpoint log: of this chain's own (clones share their template's data directory).
    anchor: FileCheckpointLog

    async def record(self, count: int) -> None:
        """Audit rows of varied shapes (IPv4 and IPv6, nested JSON, non-ASCII text) through the real `record`."""
        for index in range(count):
            actor = Actor(
                id="key_test",
                ip_address="2001:db8::7" if index % 2 else "203.0.113.7",
                device_id=f"dev-{index}",
                request_id=new_id("req"),
            )
            async with self.owner.unit_of_work(Tenant(new_id("mer"), livemode=index % 3 == 0), actor) as uow:
                record(
                    uow,
                    action_type="customer.update",
                    resource_type="customer",
                    resource_id=new_id("cus"),
                    before={"name": f"Zoë {index}", "metadata": {"b": [1, {"z": None}], "a": True}},
                    after={"name": f"Zoë {index + 1}", "ratio": 0.1, "amount": 1050 + index},
                )

    async def verify(self) -> VerifyReport:
        return await verify_chain(self.owner, self.keyring, self.anchor)

    async def cli(self, *args: str) -> tuple[int, str, str]:
        """`bastion <args>` as a real process on this database: exit code, stdout, stderr."""
        env = {**self.database.env(), "BASTION_AUDIT_CHECKPOINT_LOG": str(self.anchor.path)}
        ran = await run_bastion(*args, env=env)
        return ran.returncode, ran.stdout, ran.stderr

    async def scalar(self, statement: str, *args: Any) -> Any:
        async with self.owner.transaction() as connection:
            return await connection.fetchval(statement, *args)


def _chain(database: TestDatabase, settings: Settings, anchor: Path) -> Chain:
    private_settings = dataclasses.replace(
        settings, data_dir=database.data_dir, database_url=database.owner_url, db_role_prefix=database.role_prefix
    )
    return Chain(
        database=database,
        owner=bootstrap.owner_database(database.owner_url),
        sealer=bootstrap.role_database(private_settings, database.owner_url, database.roles.worker),
        keyring=bootstrap.keyring(private_settings),
        anchor=FileCheckpointLog(anchor),
    )


async def _seal_a_chain(database: TestDatabase, settings: Settings, anchor: Path) -> None:
    """CHAIN_ROW_COUNT rows, sealed by the worker role (so its grants are what the sealer needs)."""
    built = _chain(database, settings, anchor)
    try:
        await built.record(CHAIN_ROW_COUNT)
        assert await seal_backlog(built.sealer, built.keyring, batch_size_max=CHAIN_BATCH_SIZE) == CHAIN_ROW_COUNT
    finally:
        await built.sealer.dispose()
        await built.owner.dispose()


@pytest.fixture(scope="module")
def chain_template(
    pg_server: tuple[str, Path | None], settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestDatabase]:
    """A sealed chain, made once: each test tampers with a copy of its own."""
    with migrated_database(*pg_server) as database:
        asyncio.run(_seal_a_chain(database, settings, tmp_path_factory.mktemp("template") / "checkpoints.log"))
        yield database


@pytest.fixture
def chain_database(pg_server: tuple[str, Path | None], chain_template: TestDatabase) -> Iterator[TestDatabase]:
    with cloned_database(pg_server[0], chain_template) as database:
        yield database


@pytest.fixture
async def sealed_chain(chain_database: TestDatabase, settings: Settings, tmp_path: Path) -> AsyncIterator[Chain]:
    built = _chain(chain_database, settings, tmp_path / "audit" / "checkpoints.log")
    try:
        yield built
    finally:
        await built.sealer.dispose()
        await built.owner.dispose()


async def test_sealer_chains_contiguous_seqs_and_signs_each_batch(sealed_chain: Chain) -> None:
    async with sealed_chain.owner.transaction() as connection:
        seals = await connection.fetch("SELECT seq, prev_hash, row_hash FROM audit_seals ORDER BY seq")
        checkpoints = await connection.fetch("SELECT seq, chain_hash FROM audit_checkpoints ORDER BY seq")
        queued = await connection.fetchval("SELECT count(*) FROM audit_seal_queue")
    assert [seal["seq"] for seal in seals] == list(range(1, CHAIN_ROW_COUNT + 1))
    assert seals[0]["prev_hash"] == chain.GENESIS_HASH
    assert all(later["prev_hash"] == earlier["row_hash"] for earlier, later in itertools.pairwise(seals))
    assert [(c["seq"], c["chain_hash"]) for c in checkpoints] == [(seq, seals[seq - 1]["row_hash"]) for seq in (4, 8, 10)]
    assert queued == 0

    await sealed_chain.record(2)
    assert await seal_pending(sealed_chain.sealer, sealed_chain.keyring) == 2
    assert await seal_pending(sealed_chain.sealer, sealed_chain.keyring) == 0
    assert await sealed_chain.scalar("SELECT prev_hash FROM audit_seals WHERE seq = 11") == seals[-1]["row_hash"]
    report = await sealed_chain.verify()
    assert (report.ok, report.rows_checked, report.checkpoints_checked) == (True, 12, 4)


async def test_only_one_sealer_at_a_time(sealed_chain: Chain) -> None:
    await sealed_chain.record(3)
    async with sealed_chain.sealer.transaction() as holder:
        assert await repository.lock_sealer(holder)
        assert await seal_pending(sealed_chain.sealer, sealed_chain.keyring) == 0
    assert await sealed_chain.scalar("SELECT count(*) FROM audit_seal_queue") == 3
    assert await seal_pending(sealed_chain.sealer, sealed_chain.keyring) == 3


@pytest.mark.processes
async def test_intact_chain_verifies_and_verify_seals_nothing(sealed_chain: Chain) -> None:
    await sealed_chain.record(2)  # queued, not yet sealed: pending is not tampering
    report = await sealed_chain.verify()
    assert (report.ok, report.first_bad_seq, report.reason) == (True, None, None)
    assert (report.rows_checked, report.checkpoints_checked) == (CHAIN_ROW_COUNT, 3)

    code, stdout, stderr = await sealed_chain.cli("audit", "verify")
    assert (code, stdout) == (0, f"audit chain intact: {CHAIN_ROW_COUNT} rows, 3 checkpoints\n"), stderr
    code, stdout, stderr = await sealed_chain.cli("audit", "verify", "--json")
    assert code == 0, stderr
    assert json.loads(stdout) == dataclasses.asdict(report)
    assert await sealed_chain.scalar("SELECT count(*) FROM audit_seal_queue") == 2
    assert await sealed_chain.scalar("SELECT count(*) FROM audit_seals") == CHAIN_ROW_COUNT


# --- tampering, each done as the owner (superuser), as an intruder with database access would


async def _event_at(connection: Connection, seq: int) -> uuid.UUID:
    event_id: uuid.UUID = await connection.fetchval("SELECT event_id FROM audit_seals WHERE seq = $1", seq)
    return event_id


async def _hash_at(connection: Connection, seq: int) -> str:
    row_hash: str = await connection.fetchval("SELECT row_hash FROM audit_seals WHERE seq = $1", seq)
    return row_hash


async def _alter_row(connection: Connection, _keyring: LocalKeyring) -> None:
    await connection.execute(
        """UPDATE audit_events SET after_state = '{"name": "Mallory"}' WHERE id = $1""", await _event_at(connection, 5)
    )


async def _delete_row(connection: Connection, _keyring: LocalKeyring) -> None:
    await connection.execute("DELETE FROM audit_events WHERE id = $1", await _event_at(connection, 5))


async def _delete_row_and_seal(connection: Connection, _keyring: LocalKeyring) -> None:
    await connection.execute("DELETE FROM audit_events WHERE id = $1", await _event_at(connection, 5))
    await connection.execute("DELETE FROM audit_seals WHERE seq = 5")


async def _insert_row(connection: Connection, _keyring: LocalKeyring) -> None:
    """A forged event slipped in at seq 5, the later seals renumbered, hashed with a guessed key."""
    forged_id = uuid.uuid4()
    await connection.execute(
        "INSERT INTO audit_events (id, actor, action_type, resource_type, resource_id, created_at) "
        "VALUES ($1, 'key_forger', 'customer.delete', 'customer', 'cus_forged', now())",
        forged_id,
    )
    await connection.execute("DELETE FROM audit_seal_queue WHERE event_id = $1", forged_id)
    # Two steps: the primary key is checked per row, so a single `seq = seq + 1` can collide.
    await connection.execute("UPDATE audit_seals SET seq = -(seq + 1) WHERE seq >= 5")
    await connection.execute("UPDATE audit_seals SET seq = -seq WHERE seq < 0")
    forged = await connection.fetchrow("SELECT * FROM audit_events WHERE id = $1", forged_id)
    prev_hash = await _hash_at(connection, 4)
    await connection.execute(
        "INSERT INTO audit_seals (seq, event_id, prev_hash, row_hash) VALUES (5, $1, $2, $3)",
        forged_id,
        prev_hash,
        chain.row_hash(b"guessed-key", prev_hash, 5, dict(forged)),
    )


async def _reorder_rows(connection: Connection, _keyring: LocalKeyring) -> None:
    await connection.execute("UPDATE audit_seals SET seq = -1 WHERE seq = 5")
    await connection.execute("UPDATE audit_seals SET seq = 5 WHERE seq = 6")
    await connection.execute("UPDATE audit_seals SET seq = 6 WHERE seq = -1")


async def _truncate_tail(connection: Connection, _keyring: LocalKeyring) -> None:
    """Rows 9 and 10 gone with their seals; the checkpoint at 10 is left behind."""
    await connection.execute("DELETE FROM audit_events WHERE id IN (SELECT event_id FROM audit_seals WHERE seq > 8)")
    await connection.execute("DELETE FROM audit_seals WHERE seq > 8")


async def _forge_checkpoint(connection: Connection, keyring: LocalKeyring) -> None:
    """A new checkpoint at 6 over the true chain hash, signed by the intruder's own key under the real key id."""
    real = chain.sign_checkpoint(keyring.signing_key(chain.CHECKPOINT_KEY_PURPOSE), 6, await _hash_at(connection, 6))
    intruder = chain.sign_checkpoint(Ed25519PrivateKey.generate(), 6, real["chain_hash"])
    await connection.execute(
        "INSERT INTO audit_checkpoints (seq, chain_hash, key_id, signature) VALUES (6, $1, $2, $3)",
        real["chain_hash"],
        real["key_id"],
        intruder["signature"],
    )


async def _foreign_key_checkpoint(connection: Connection, _keyring: LocalKeyring) -> None:
    intruder = chain.sign_checkpoint(Ed25519PrivateKey.generate(), 8, await _hash_at(connection, 8))
    await connection.execute(
        "UPDATE audit_checkpoints SET key_id = $1, signature = $2 WHERE seq = 8", intruder["key_id"], intruder["signature"]
    )


async def _rehash_checkpoint(connection: Connection, _keyring: LocalKeyring) -> None:
    await connection.execute("UPDATE audit_checkpoints SET chain_hash = $1 WHERE seq = 4", "0" * 64)


async def _misattested_checkpoint(connection: Connection, keyring: LocalKeyring) -> None:
    """Validly signed (someone with the key) but over a chain hash the rows do not produce."""
    signed = chain.sign_checkpoint(keyring.signing_key(chain.CHECKPOINT_KEY_PURPOSE), 6, "f" * 64)
    await connection.execute(
        "INSERT INTO audit_checkpoints (seq, chain_hash, key_id, signature) VALUES ($1, $2, $3, $4)",
        signed["seq"],
        signed["chain_hash"],
        signed["key_id"],
        signed["signature"],
    )


Tamper = Callable[[Connection, LocalKeyring], Awaitable[None]]


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "reason_part"),
    [
        (_alter_row, 5, "row hash mismatch"),
        (_delete_row, 5, "is missing: the row was deleted"),
        (_delete_row_and_seal, 5, "expected seq 5, found seq 6"),
        (_insert_row, 5, "row hash mismatch"),
        (_reorder_rows, 5, "prev_hash does not match"),
        (_truncate_tail, 9, "chain ends at seq 8"),
        (_forge_checkpoint, 6, "signature is invalid"),
        (_foreign_key_checkpoint, 8, "unknown key"),
        (_rehash_checkpoint, 4, "signature is invalid"),
        (_misattested_checkpoint, 6, "chain_hash differs"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
async def test_tampering_is_found_at_the_first_bad_seq(
    sealed_chain: Chain, tamper: Tamper, bad_seq: int, reason_part: str
) -> None:
    async with sealed_chain.owner.transaction() as connection:
        await tamper(connection, sealed_chain.keyring)

    report = await sealed_chain.verify()
    assert (report.ok, report.first_bad_seq) == (False, bad_seq), report
    assert report.reason is not None
    assert reason_part in report.reason


@pytest.mark.processes
async def test_cli_names_the_broken_seq(sealed_chain: Chain) -> None:
    """The command reports what `verify_chain` finds: the line, and with --json the whole report."""
    async with sealed_chain.owner.transaction() as connection:
        await _alter_row(connection, sealed_chain.keyring)
    code, stdout, stderr = await sealed_chain.cli("audit", "verify")
    assert (code, stdout) == (1, "")
    assert stderr == "error: audit chain broken at seq 5: row hash mismatch: the row was altered or forged\n"
    code, stdout, stderr = await sealed_chain.cli("audit", "verify", "--json")
    assert code == 1, stderr
    assert json.loads(stdout) == dataclasses.asdict(await sealed_chain.verify())


@pytest.mark.processes
async def test_row_written_behind_the_trigger_is_reported(sealed_chain: Chain) -> None:
    hidden_id = uuid.uuid4()
    async with sealed_chain.owner.transaction() as connection:
        # A superuser can switch triggers off for its session: the row never reaches the queue.
        await connection.execute("SET LOCAL session_replication_role = replica")
        await connection.execute(
            "INSERT INTO audit_events (id, actor, action_type, resource_type, resource_id, created_at) "
            "VALUES ($1, 'key_forger', 'customer.create', 'customer', 'cus_hidden', now())",
            hidden_id,
        )
    assert await seal_pending(sealed_chain.sealer, sealed_chain.keyring) == 0

    report = await sealed_chain.verify()
    assert (report.ok, report.first_bad_seq, report.rows_checked) == (False, None, CHAIN_ROW_COUNT)
    assert report.reason is not None
    assert str(hidden_id) in report.reason
    code, stdout, stderr = await sealed_chain.cli("audit", "verify")
    assert (code, stdout) == (1, "")
    assert stderr.startswith("error: audit chain broken: audit rows neither sealed nor queued")
    assert str(hidden_id) in stderr


def test_chained_fields_are_every_column_but_the_batching_hint() -> None:
    """A new audit column must be a deliberate change of the canonical form (a new version)."""
    assert set(chain.CHAINED_FIELDS) == {column.name for column in audit_events.columns} - {"insert_order"}


# --- the worker, as a real process -----------------------------------------------------


async def _sealed_count(owner: Database, resource_id: str) -> int:
    statement = "SELECT count(*) FROM audit_seals s JOIN audit_events e ON e.id = s.event_id WHERE e.resource_id = $1"
    async with owner.transaction() as connection:
        return int(await connection.fetchval(statement, resource_id))


@pytest.mark.processes
async def test_worker_seals_rows_written_through_the_api(
    platform: Platform, merchant: Credentials, test_database: TestDatabase
) -> None:
    async with platform.client(merchant) as client:
        customer_id = (await client.post("/v1/customers", json={"name": "to be sealed"})).json()["id"]
        assert (await client.post(f"/v1/customers/{customer_id}", json={"name": "sealed"})).status_code == 200

    # The worker copies its newest checkpoint out of the database, where `bastion audit verify` reads it.
    anchor = FileCheckpointLog(test_database.data_dir / "audit" / "checkpoints.log")

    async def sealed_and_anchored() -> bool:
        if await _sealed_count(platform.owner, customer_id) < 2:
            return False
        async with platform.owner.transaction() as connection:
            newest = await repository.latest_checkpoint(connection)
        anchored = anchor.latest()
        return newest is not None and anchored is not None and anchored.seq >= newest["seq"]

    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bastion", "worker", env=test_database.env(), stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + WORKER_SEAL_WAIT_S
            while not await sealed_and_anchored():
                if process.returncode is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"the worker did not seal the rows: {log.read().decode(errors='replace')[-3000:]}")
                await asyncio.sleep(0.2)
        finally:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), PROCESS_STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        assert process.returncode == 0

    report = await verify_chain(platform.owner, LocalKeyring.open(test_database.data_dir, create=False), anchor)
    assert report.ok, report


# --- the external checkpoint log (issue 12, item 9)


async def _delete_tail_with_checkpoints(connection: Connection) -> None:
    """What an intruder with a superuser connection does to hide the newest rows."""
    await connection.execute("DELETE FROM audit_events WHERE id IN (SELECT event_id FROM audit_seals WHERE seq > 8)")
    await connection.execute("DELETE FROM audit_seals WHERE seq > 8")
    await connection.execute("DELETE FROM audit_checkpoints WHERE seq > 8")


@pytest.mark.processes
async def test_deleting_the_newest_rows_with_their_checkpoints_is_found_by_the_external_log(sealed_chain: Chain) -> None:
    assert await anchor_latest(sealed_chain.sealer, sealed_chain.anchor)
    assert (anchored := sealed_chain.anchor.latest()) is not None
    assert anchored.seq == CHAIN_ROW_COUNT
    async with sealed_chain.owner.transaction() as connection:
        await _delete_tail_with_checkpoints(connection)

    inside = await verify_chain(sealed_chain.owner, sealed_chain.keyring, None)
    assert inside.ok, "the database alone cannot show it: the reason for the external log"
    report = await sealed_chain.verify()
    assert (report.ok, report.first_bad_seq) == (False, 9), report
    assert report.reason is not None
    assert "audit row 9 is missing" in report.reason
    code, stdout, stderr = await sealed_chain.cli("audit", "verify")
    assert (code, stdout) == (1, "")
    assert stderr.startswith("error: audit chain broken at seq 9: audit row 9 is missing: the external checkpoint log vouches")


async def test_a_checkpoint_is_anchored_after_its_commit_and_a_missed_one_the_next_round(sealed_chain: Chain) -> None:
    assert await anchor_latest(sealed_chain.sealer, sealed_chain.anchor)
    assert not await anchor_latest(sealed_chain.sealer, sealed_chain.anchor), "nothing new: nothing appended"
    await sealed_chain.record(2)
    # Sealed and committed, and the worker stopped before anchoring: the log is one behind.
    assert await seal_pending(sealed_chain.sealer, sealed_chain.keyring) == 2
    assert (await sealed_chain.verify()).ok, "a log behind the database is no tampering"
    assert await anchor_latest(sealed_chain.sealer, sealed_chain.anchor)
    anchored = sealed_chain.anchor.latest()
    assert anchored is not None
    assert anchored.seq == CHAIN_ROW_COUNT + 2
    # A line cut short by a crash mid-write was never appended.
    with sealed_chain.anchor.path.open("ab") as log:
        log.write(b'{"seq": 99, "chain_hash": "')
    assert sealed_chain.anchor.latest() == anchored
    assert (await sealed_chain.verify()).ok
    assert sealed_chain.anchor.path.stat().st_mode & 0o077 == 0


async def test_an_edited_external_log_is_found(sealed_chain: Chain) -> None:
    assert await anchor_latest(sealed_chain.sealer, sealed_chain.anchor)
    anchored = sealed_chain.anchor.latest()
    assert anchored is not None
    # The newest line moved past the chain's end: its signature no longer holds.
    sealed_chain.anchor.append(dataclasses.replace(anchored, seq=anchored.seq + 5))
    report = await sealed_chain.verify()
    assert (report.ok, report.first_bad_seq) == (False, anchored.seq + 5)
    assert report.reason is not None
    assert "not signed by this install" in report.reason


async def test_sealer_refuses_to_extend_a_truncated_chain(sealed_chain: Chain) -> None:
    async with sealed_chain.owner.transaction() as connection:
        await _truncate_tail(connection, sealed_chain.keyring)
    await sealed_chain.record(1)
    with pytest.raises(InvariantViolated, match="audit chain truncated"):
        await seal_pending(sealed_chain.sealer, sealed_chain.keyring)
    assert await sealed_chain.scalar("SELECT count(*) FROM audit_seal_queue") == 1
