"""Webhooks: the endpoints merchants register to receive Bastion's events, and the deliveries
to them (docs/webhooks.md)."""

from bastion.webhooks.events import EVENT_TYPES
from bastion.webhooks.secrets import SECRETS_KEY_PURPOSE, EndpointSecrets

__all__ = ["EVENT_TYPES", "SECRETS_KEY_PURPOSE", "EndpointSecrets"]
