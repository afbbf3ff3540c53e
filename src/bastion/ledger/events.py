"""The events the ledger emits; bootstrap registers them with the outbox."""

LEDGER_ACCOUNT_CREATED = "ledger.account.created"
LEDGER_ACCOUNT_CLOSED = "ledger.account.closed"

EVENT_TYPES = frozenset({LEDGER_ACCOUNT_CREATED, LEDGER_ACCOUNT_CLOSED})
