"""The events the customers context emits; bootstrap registers them with the outbox."""

CUSTOMER_CREATED = "customer.created"
CUSTOMER_UPDATED = "customer.updated"
CUSTOMER_DELETED = "customer.deleted"

EVENT_TYPES = frozenset({CUSTOMER_CREATED, CUSTOMER_UPDATED, CUSTOMER_DELETED})
