"""Why webhooks refuse a request: one class per stable code."""

from bastion.kernel.errors import InvalidRequest, RateLimited


class WebhookEndpointsFull(InvalidRequest):
    """The merchant has as many webhook endpoints in this mode as allowed (docs/webhooks.md, Limits)."""

    code = "webhook_endpoints_full"


class WebhookRecoverRateLimited(RateLimited):
    """The endpoint recovered its dead letters less than a minute ago (docs/webhooks.md, Recovery)."""

    code = "webhook_recover_rate_limited"


class WebhookRecoverWindow(InvalidRequest):
    """`since` of a recovery is in the future or more than 14 days back (docs/webhooks.md, Dead letters)."""

    code = "webhook_recover_window"
