"""The API's own app: its factory, authentication, the request context (scopes, rate limit,
unit of work, idempotency, commands in phases) and the demo shop."""
