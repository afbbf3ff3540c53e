"""Why connectors refuse a request: one class per stable code."""

from bastion.kernel.errors import InvalidRequest


class ConnectorAccountsFull(InvalidRequest):
    """The merchant has as many enabled connector accounts in this mode as allowed (docs/connectors.md, Limits)."""

    code = "connector_accounts_full"
