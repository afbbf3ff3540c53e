"""The events the connectors context emits; bootstrap registers them with the outbox. Their
object is the account as the API shows it: credentials masked."""

CONNECTOR_ACCOUNT_CREATED = "connector_account.created"
CONNECTOR_ACCOUNT_UPDATED = "connector_account.updated"
CONNECTOR_ACCOUNT_DISABLED = "connector_account.disabled"

EVENT_TYPES = frozenset({CONNECTOR_ACCOUNT_CREATED, CONNECTOR_ACCOUNT_UPDATED, CONNECTOR_ACCOUNT_DISABLED})
