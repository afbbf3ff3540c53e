"""Audit trail: an insert-only log of every change, hash-chained and signed off the hot path."""

from bastion.audit.service import record

__all__ = ["record"]
