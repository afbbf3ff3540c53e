"""The events the payments context emits; bootstrap registers them with the outbox."""

PAYMENT_METHOD_CREATED = "payment_method.created"

EVENT_TYPES = frozenset({PAYMENT_METHOD_CREATED})
