"""The events the webhooks context emits; bootstrap registers them with the outbox. Neither is
delivered to the endpoint it is about (docs/webhooks.md, Dead letters)."""

WEBHOOK_ENDPOINT_DELIVERY_EXHAUSTED = "webhook_endpoint.delivery_exhausted"
WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint.disabled"

EVENT_TYPES = frozenset({WEBHOOK_ENDPOINT_DELIVERY_EXHAUSTED, WEBHOOK_ENDPOINT_DISABLED})
