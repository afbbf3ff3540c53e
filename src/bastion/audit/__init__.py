"""Audit trail: an insert-only log of every change, hash-chained and signed off the hot path."""

from bastion.audit.sealer import seal_backlog, seal_pending
from bastion.audit.service import record
from bastion.audit.verify import VerifyReport, verify_chain

__all__ = ["VerifyReport", "record", "seal_backlog", "seal_pending", "verify_chain"]
