"""The audit tail's anchor outside the database: every newest signed checkpoint is also
appended to an append-only log, so that deleting the newest audit rows together with their
checkpoints (which the database alone cannot show) is found by `bastion audit verify`.

The log is a file today (JSON lines, opened with O_APPEND, each line synced before the next
round), kept outside the database's data directory; `CheckpointLog` is the interface an
object store with retention locks (S3 Object Lock in compliance mode) would implement.

A checkpoint is appended only after the transaction that wrote it committed, by the round
after the seal (`anchor_latest`): a crash between the two leaves the log one checkpoint
behind, which the next round repairs, and never a line that the database does not hold.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bastion.audit import repository
from bastion.platform.db import AnyRow, Database

# How much of the file's end is read to find its last line: far more than one line.
_TAIL_BYTES = 8_192


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    chain_hash: str
    key_id: str
    signature: str

    @classmethod
    def from_row(cls, row: AnyRow) -> "Checkpoint":
        """An `audit_checkpoints` row."""
        return cls(seq=row["seq"], chain_hash=row["chain_hash"], key_id=row["key_id"], signature=row["signature"])


class CheckpointLog(Protocol):
    def append(self, checkpoint: Checkpoint) -> None:
        """Add `checkpoint` durably; never rewrites what is there."""
        ...

    def latest(self) -> Checkpoint | None:
        """The last whole checkpoint appended, or None."""
        ...


@dataclass(frozen=True, slots=True)
class FileCheckpointLog:
    path: Path

    def append(self, checkpoint: Checkpoint) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = json.dumps(
            {
                "seq": checkpoint.seq,
                "chain_hash": checkpoint.chain_hash,
                "key_id": checkpoint.key_id,
                "signature": checkpoint.signature,
            },
            separators=(",", ":"),
        )
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            # One write per line: appends of a line are not interleaved with another writer's.
            os.write(descriptor, (line + "\n").encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def latest(self) -> Checkpoint | None:
        if not self.path.exists():
            return None
        with self.path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - _TAIL_BYTES))
            tail = log.read()
        # A line cut short by a crash has no newline yet: it was never appended.
        lines = tail.split(b"\n")[:-1]
        if not lines:
            return None
        loaded = json.loads(lines[-1])
        return Checkpoint(
            seq=int(loaded["seq"]),
            chain_hash=str(loaded["chain_hash"]),
            key_id=str(loaded["key_id"]),
            signature=str(loaded["signature"]),
        )


async def anchor_latest(database: Database, log: CheckpointLog) -> bool:
    """Append the database's newest checkpoint to `log` unless the log has it; True if appended."""
    async with database.transaction() as connection:
        newest = await repository.latest_checkpoint(connection)
    if newest is None:
        return False
    anchored = log.latest()
    if anchored is not None and anchored.seq >= newest["seq"]:
        return False
    log.append(Checkpoint.from_row(newest))
    return True
