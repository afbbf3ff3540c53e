"""Why webhooks refuse a request: one class per stable code."""

from bastion.kernel.errors import InvalidRequest


class WebhookEndpointsFull(InvalidRequest):
    """The merchant has as many webhook endpoints in this mode as allowed (docs/webhooks.md, Limits)."""

    code = "webhook_endpoints_full"
