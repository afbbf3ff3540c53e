"""Why connectors refuse a request: one class per stable code."""

from bastion.kernel.errors import InvalidRequest


class ConnectorAccountsFull(InvalidRequest):
    """The merchant has as many enabled connector accounts in this mode as allowed (docs/connectors.md, Limits)."""

    code = "connector_accounts_full"


class ConnectorCredentialsInvalid(InvalidRequest):
    """A credential the connector needs in this mode is missing, one it does not take is sent, or
    one is not in its provider's form (docs/connectors.md, Credentials)."""

    code = "connector_credentials_invalid"


class ConnectorModeUnsupported(InvalidRequest):
    """The connector takes no accounts in this mode: the sandbox acquirer is for test mode only."""

    code = "connector_mode_unsupported"


class ConnectorAccountDisabled(InvalidRequest):
    """The connector account named for a payment is disabled: it takes no new payments."""

    code = "connector_account_disabled"
