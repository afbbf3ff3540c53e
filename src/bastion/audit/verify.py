"""`bastion audit verify`: recompute the whole chain with the keyring, check every checkpoint,
and hold the database to the newest checkpoint of the external log (`anchor`).

Runs as the owner (no row-level security, so every tenant's rows are seen) inside one
read-only snapshot, so that a sealer committing meanwhile cannot look like tampering.
It only reads: it never seals what is still queued.
"""

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bastion.audit import chain, repository
from bastion.audit.anchor import Checkpoint, CheckpointLog
from bastion.platform.crypto import Keyring, public_key_id
from bastion.platform.db import AnyRow, Connection, Database

PAGE_SIZE = 5000
UNSEALED_REPORTED_MAX = 5


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    first_bad_seq: int | None
    reason: str | None
    rows_checked: int
    checkpoints_checked: int

    @classmethod
    def broken(cls, rows_checked: int, checkpoints_checked: int, seq: int | None, reason: str) -> "VerifyReport":
        return cls(False, seq, reason, rows_checked, checkpoints_checked)


@dataclass(frozen=True, slots=True)
class _Keys:
    chain_key: bytes
    public_key: Ed25519PublicKey
    key_id: str


def _seal_problem(keys: _Keys, seal: AnyRow, expected_seq: int, prev_hash: str, anchored: Checkpoint | None) -> str | None:
    if seal["seq"] != expected_seq:
        return f"expected seq {expected_seq}, found seq {seal['seq']}: sealed rows were deleted or renumbered"
    if seal["id"] is None:
        return f"event {seal['sealed_event_id']} sealed at this seq is missing: the row was deleted"
    if not chain.hashes_equal(seal["prev_hash"], prev_hash):
        return "prev_hash does not match the previous row's hash: rows were reordered, inserted or deleted"
    if not chain.hashes_equal(chain.row_hash(keys.chain_key, prev_hash, seal["seq"], dict(seal)), seal["row_hash"]):
        return "row hash mismatch: the row was altered or forged"
    if anchored is not None and seal["seq"] == anchored.seq and not chain.hashes_equal(seal["row_hash"], anchored.chain_hash):
        return "the chain differs from the external checkpoint log's at this seq"
    return None


def _signature_problem(keys: _Keys, checkpoint: Checkpoint) -> str | None:
    if checkpoint.key_id != keys.key_id:
        return f"checkpoint signed by unknown key {checkpoint.key_id!r} (expected {keys.key_id!r})"
    if not chain.checkpoint_signature_valid(keys.public_key, checkpoint.seq, checkpoint.chain_hash, checkpoint.signature):
        return "checkpoint signature is invalid"
    return None


def _checkpoint_problem(keys: _Keys, checkpoint: AnyRow, chain_hash: str) -> str | None:
    if problem := _signature_problem(keys, Checkpoint.from_row(checkpoint)):
        return problem
    if not chain.hashes_equal(checkpoint["chain_hash"], chain_hash):
        return "checkpoint chain_hash differs from the recomputed chain"
    return None


async def _tail_problem(connection: Connection, last_seq: int, anchored: Checkpoint | None) -> tuple[int | None, str] | None:
    """What is wrong after the last sealed row: a checkpoint, in the database or in the
    external log, that vouches for rows beyond it; rows that never reached the chain."""
    tail_seq = await repository.last_checkpoint_seq(connection)
    if tail_seq is not None and tail_seq > last_seq:
        return last_seq + 1, (
            f"a checkpoint vouches for seq {tail_seq} but the chain ends at seq {last_seq}: sealed rows were deleted"
        )
    if anchored is not None and anchored.seq > last_seq:
        return last_seq + 1, (
            f"audit row {last_seq + 1} is missing: the external checkpoint log vouches for rows up to seq "
            f"{anchored.seq}, the database's chain ends at seq {last_seq}"
        )
    unsealed = await repository.unsealed_event_ids(connection, UNSEALED_REPORTED_MAX)
    if unsealed:
        listed = ", ".join(str(event_id) for event_id in unsealed)
        return None, f"audit rows neither sealed nor queued (written behind the trigger's back): {listed}"
    return None


async def verify_chain(database: Database, keyring: Keyring, anchor: CheckpointLog | None) -> VerifyReport:
    """`anchor`: the external checkpoint log (None: the database's own checkpoints only)."""
    signing_key = keyring.signing_key(chain.CHECKPOINT_KEY_PURPOSE)
    keys = _Keys(
        chain_key=keyring.secret(chain.CHAIN_KEY_PURPOSE),
        public_key=signing_key.public_key(),
        key_id=public_key_id(signing_key.public_key()),
    )
    rows_checked = checkpoints_checked = 0
    last_seq, prev_hash = 0, chain.GENESIS_HASH

    anchored = anchor.latest() if anchor is not None else None
    if anchored is not None and (problem := _signature_problem(keys, anchored)):
        reason = (
            f"the external checkpoint log's newest line (seq {anchored.seq}) is not signed by this install "
            f"({problem}): the log was edited"
        )
        return VerifyReport.broken(rows_checked, checkpoints_checked, anchored.seq, reason)

    async with database.connection() as connection, connection.transaction(isolation="repeatable_read", readonly=True):
        after_seq: int | None = None
        while page := await repository.sealed_page(connection, after_seq, PAGE_SIZE):
            checkpoints = {
                row["seq"]: row for row in await repository.checkpoints_through(connection, after_seq, page[-1]["seq"])
            }
            for seal in page:
                if problem := _seal_problem(keys, seal, last_seq + 1, prev_hash, anchored):
                    return VerifyReport.broken(rows_checked, checkpoints_checked, min(seal["seq"], last_seq + 1), problem)
                rows_checked += 1
                last_seq, prev_hash = seal["seq"], seal["row_hash"]
                checkpoint = checkpoints.pop(seal["seq"], None)
                if checkpoint is not None:
                    if problem := _checkpoint_problem(keys, checkpoint, prev_hash):
                        return VerifyReport.broken(
                            rows_checked, checkpoints_checked, seal["seq"], f"checkpoint at seq {seal['seq']}: {problem}"
                        )
                    checkpoints_checked += 1
            if checkpoints:
                stray = min(checkpoints)
                return VerifyReport.broken(
                    rows_checked, checkpoints_checked, stray, f"checkpoint at seq {stray} vouches for no sealed row"
                )
            after_seq = last_seq
        if tail := await _tail_problem(connection, last_seq, anchored):
            return VerifyReport.broken(rows_checked, checkpoints_checked, *tail)
    return VerifyReport(True, None, None, rows_checked, checkpoints_checked)
