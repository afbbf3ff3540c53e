"""The events the routing context emits; bootstrap registers them with the outbox. Their object
is the routing rules as the API shows them."""

ROUTING_RULES_CREATED = "routing_rules.created"
ROUTING_RULES_ACTIVATED = "routing_rules.activated"

EVENT_TYPES = frozenset({ROUTING_RULES_CREATED, ROUTING_RULES_ACTIVATED})
