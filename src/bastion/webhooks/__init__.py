"""Webhooks: the endpoints merchants register to receive Bastion's events (docs/webhooks.md)."""

from bastion.webhooks.secrets import SECRETS_KEY_PURPOSE, EndpointSecrets

__all__ = ["SECRETS_KEY_PURPOSE", "EndpointSecrets"]
