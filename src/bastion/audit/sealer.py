"""The sealer: chains queued audit rows, off the request path, in batches.

Commands only insert their audit row (the trigger queues it). The worker then gives
queued rows contiguous seqs after the chain head, links each to the previous one by
its keyed hash and signs the new head, all in one transaction, so the chain never
has a half-sealed batch and commands never wait on the chain head.
"""

from bastion.audit import chain, repository
from bastion.kernel.errors import invariant
from bastion.platform.crypto import Keyring
from bastion.platform.db import Database

# A bound on one transaction's work (rows hashed, seals inserted, queue rows deleted).
BATCH_SIZE_LIMIT = 5000


async def seal_pending(database: Database, keyring: Keyring, batch_size_max: int = 1000) -> int:
    """Seal up to `batch_size_max` queued rows and sign one checkpoint at the last of them.
    Returns the number of rows sealed: 0 when the queue is empty or another sealer runs."""
    invariant(1 <= batch_size_max <= BATCH_SIZE_LIMIT, f"batch_size_max must be 1 to {BATCH_SIZE_LIMIT}")
    chain_key = keyring.secret(chain.CHAIN_KEY_PURPOSE)
    signing_key = keyring.signing_key(chain.CHECKPOINT_KEY_PURPOSE)
    async with database.transaction() as connection:
        if not await repository.lock_sealer(connection):
            return 0
        events = await repository.queued_events(connection, batch_size_max)
        if not events:
            return 0
        head = await repository.last_seal(connection)
        seq, prev_hash = (head["seq"], head["row_hash"]) if head is not None else (0, chain.GENESIS_HASH)
        # A checkpoint beyond the head means sealed rows were deleted: extending the chain
        # would bury the evidence, so stop until an operator has run `bastion audit verify`.
        checkpoint_seq = await repository.last_checkpoint_seq(connection)
        invariant(
            checkpoint_seq is None or checkpoint_seq <= seq,
            f"audit chain truncated: a checkpoint signs seq {checkpoint_seq}, the chain ends at {seq}; run bastion audit verify",
        )
        seals = []
        for event in events:
            seq += 1
            row_hash = chain.row_hash(chain_key, prev_hash, seq, dict(event))
            seals.append({"seq": seq, "event_id": event["id"], "prev_hash": prev_hash, "row_hash": row_hash})
            prev_hash = row_hash
        await repository.insert_seals(connection, seals)
        await repository.dequeue(connection, [event["id"] for event in events])
        await repository.insert_checkpoint(connection, chain.sign_checkpoint(signing_key, seq, prev_hash))
    return len(events)


async def seal_backlog(database: Database, keyring: Keyring, batch_size_max: int = 1000, batch_count_max: int = 100) -> int:
    """Seal batch after batch until one comes back short (the queue is drained) or
    `batch_count_max` batches are done; what is left waits for the next round."""
    sealed_total = 0
    for _ in range(batch_count_max):
        sealed = await seal_pending(database, keyring, batch_size_max)
        sealed_total += sealed
        if sealed < batch_size_max:
            break
    return sealed_total
