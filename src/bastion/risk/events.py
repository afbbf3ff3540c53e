"""The events the risk context emits; bootstrap registers them with the outbox."""

RISK_DECISION = "risk.decision"

EVENT_TYPES = frozenset({RISK_DECISION})
