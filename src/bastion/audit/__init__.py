"""Audit trail: an insert-only log of every change, hash-chained and signed off the hot path."""

from bastion.audit.anchor import Checkpoint, CheckpointLog, FileCheckpointLog, anchor_latest
from bastion.audit.sealer import seal_backlog, seal_pending
from bastion.audit.service import record
from bastion.audit.verify import VerifyReport, verify_chain

__all__ = [
    "Checkpoint",
    "CheckpointLog",
    "FileCheckpointLog",
    "VerifyReport",
    "anchor_latest",
    "record",
    "seal_backlog",
    "seal_pending",
    "verify_chain",
]
