"""Idempotency keys: stored responses (Stripe's semantics) and commands in phases."""

from bastion.platform.idempotency.runner import (
    RESUMED,
    Answer,
    Outcome,
    PhasedCommands,
    Phases,
    Reply,
    State,
    key_in_use,
    stored_answer,
)

__all__ = ["RESUMED", "Answer", "Outcome", "PhasedCommands", "Phases", "Reply", "State", "key_in_use", "stored_answer"]
